# Reference solution, step replication (SVR2): replicate Linux01 to SVR1 every 300 s (lab variable
# replication_frequency_seconds, from lab.env) and send the initial copy over the network.
$ErrorActionPreference = 'Stop'
$env_ = @{}
foreach ($line in Get-Content -Path 'C:\hyperlab\secrets\lab.env') {
    if ($line -match "^(\w+)='(.*)'$") { $env_[$Matches[1]] = $Matches[2] }
}
$vm = $env_['replica_vm']
$frequency = [int]$env_['replication_frequency_seconds']
$replica = "$($env_['replica_server']).kosa.vm"
if (-not (Get-VMReplication -VMName $vm -ErrorAction SilentlyContinue)) {
    Enable-VMReplication -VMName $vm -ReplicaServerName $replica -ReplicaServerPort 80 -AuthenticationType Kerberos `
        -ReplicationFrequencySec $frequency
    Start-VMInitialReplication -VMName $vm
}
