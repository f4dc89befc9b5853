# Runs on each Hyper-V host: the replicated VM as this host sees it (primary or replica side).
# The checker defines $VMName before this text.
$vm = Get-VM -Name $VMName -ErrorAction SilentlyContinue
$vmView = $null
if ($null -ne $vm) {
    $vmView = [pscustomobject]@{ Name = [string]$vm.Name; State = $vm.State.ToString(); ReplicationMode = $vm.ReplicationMode.ToString() }
}
$replication = foreach ($r in Get-VMReplication -VMName $VMName -ErrorAction SilentlyContinue) {
    [pscustomobject]@{
        VMName        = [string]$r.VMName
        State         = $r.State.ToString()
        Health        = $r.Health.ToString()
        Mode          = $r.Mode.ToString()
        FrequencySec  = [int]$r.FrequencySec
        PrimaryServer = [string]$r.PrimaryServer
        ReplicaServer = [string]$r.ReplicaServer
        ReplicaPort   = [int]$r.ReplicaPort
        AuthType      = $r.AuthType.ToString()
    }
}
[pscustomobject]@{ Host = [string]$env:COMPUTERNAME; VM = $vmView; Replication = @($replication) }
