# Reference solution, step live-migration-settings (SVR1, SVR2): incoming and outgoing live
# migrations, Kerberos, on the host's own address only (the seed adds 192.168.1.110 / .120).
$ErrorActionPreference = 'Stop'
$hostIp = (Get-NetIPAddress -AddressFamily IPv4 | Where-Object { $_.IPAddress -like '192.168.1.*' } | Select-Object -First 1).IPAddress
Enable-VMMigration
Set-VMHost -VirtualMachineMigrationAuthenticationType Kerberos -UseAnyNetworkForMigration $false
if (-not (Get-VMMigrationNetwork | Where-Object { $_.Subnet -eq "$hostIp/32" })) {
    Add-VMMigrationNetwork "$hostIp/32"
}
