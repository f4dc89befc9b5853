# Reference solution, step switches (SVR1, SVR2): External on the NIC that carries the host's
# 192.168.1.x address, shared with the management OS (Hyper-V moves the static address onto
# "vEthernet (External)"), then Internal, Private and Internal2. Idempotent.
$ErrorActionPreference = 'Stop'
if (-not (Get-VMSwitch -Name External -ErrorAction SilentlyContinue)) {
    $uplink = Get-NetIPAddress -AddressFamily IPv4 | Where-Object { $_.IPAddress -like '192.168.1.*' } | Select-Object -First 1
    if ($null -eq $uplink) { throw 'no NIC with a 192.168.1.x address to bind the External switch to' }
    New-VMSwitch -Name External -NetAdapterName $uplink.InterfaceAlias -AllowManagementOS $true | Out-Null
}
foreach ($s in @(@{ Name = 'Internal'; Type = 'Internal' }, @{ Name = 'Private'; Type = 'Private' }, @{ Name = 'Internal2'; Type = 'Internal' })) {
    if (-not (Get-VMSwitch -Name $s.Name -ErrorAction SilentlyContinue)) {
        New-VMSwitch -Name $s.Name -SwitchType $s.Type | Out-Null
    }
}
