# Runs on each Hyper-V host: the replicated VM as this host sees it (primary or replica side).
# The checker defines $VMName before this text.
$vm = Get-VM -Name $VMName -ErrorAction SilentlyContinue
$vmView = $null
if ($null -ne $vm) {
    $vmView = [pscustomobject]@{ Name = [string]$vm.Name; State = $vm.State.ToString(); ReplicationMode = $vm.ReplicationMode.ToString() }
}
$replication = foreach ($r in Get-VMReplication -VMName $VMName -ErrorAction SilentlyContinue) {
    # the class's own property names (Microsoft.HyperV.PowerShell.VMReplication): the short ones
    # (State, Health, Mode, ...) are only the default table's column labels
    [pscustomobject]@{
        VMName                  = [string]$r.VMName
        ReplicationState        = $r.ReplicationState.ToString()
        ReplicationHealth       = $r.ReplicationHealth.ToString()
        ReplicationMode         = $r.ReplicationMode.ToString()
        ReplicationFrequencySec = [int]$r.ReplicationFrequencySec
        PrimaryServerName       = [string]$r.PrimaryServerName
        ReplicaServerName       = [string]$r.ReplicaServerName
        ReplicaServerPort       = [int]$r.ReplicaServerPort
        AuthenticationType      = $r.AuthenticationType.ToString()
    }
}
[pscustomobject]@{ Host = [string]$env:COMPUTERNAME; VM = $vmView; Replication = @($replication) }
