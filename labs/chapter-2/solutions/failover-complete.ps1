# Reference solution, step planned-failover, part 2 (on the replica, SVR1): fail over, reverse the
# replication (SVR1 becomes the primary and replicates back to SVR2) and start the VM.
$ErrorActionPreference = 'Stop'
$vm = 'Linux01'
if ((Get-VMReplication -VMName $vm).ReplicationMode.ToString() -eq 'Primary') { return }  # already reversed
Start-VMFailover -VMName $vm -Confirm:$false
Set-VMReplication -VMName $vm -Reverse -ReplicaServerName 'SVR2.kosa.vm' -Confirm:$false
Start-VM -Name $vm
