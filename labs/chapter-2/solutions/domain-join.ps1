# Reference solution, step domain-join (SVR1, SVR2): DNS at DC1, join kosa.vm as the domain's
# Administrator (password: the instance secret the framework puts in C:\hyperlab\secrets), then a
# restart a few seconds after this script has returned (the agent must see it finish).
$ErrorActionPreference = 'Stop'
$domain = 'kosa.vm'
$dcAddress = '192.168.1.100'
if ((Get-CimInstance Win32_ComputerSystem).Domain -eq $domain) { return }
$hostIp = Get-NetIPAddress -AddressFamily IPv4 | Where-Object { $_.IPAddress -like '192.168.1.*' } | Select-Object -First 1
Set-DnsClientServerAddress -InterfaceIndex $hostIp.InterfaceIndex -ServerAddresses $dcAddress
$password = (Get-Content -Raw -Path 'C:\hyperlab\secrets\domain-admin').Trim() | ConvertTo-SecureString -AsPlainText -Force
$credential = New-Object System.Management.Automation.PSCredential ('KOSA\Administrator', $password)
Add-Computer -DomainName $domain -Credential $credential -Force
shutdown.exe /r /t 15 /d p:4:2 /c 'hyperlab: joined kosa.vm'
