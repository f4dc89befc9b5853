# Reference solution, step planned-failover, part 1 (on the primary, SVR2): shut Linux01 down and
# prepare the planned failover (sends the last changes to the replica).
$ErrorActionPreference = 'Stop'
$vm = 'Linux01'
$r = Get-VMReplication -VMName $vm
if ($r.ReplicationMode.ToString() -ne 'Primary') { return }  # already failed over
# The seed's VM may have no OS (no shutdown service): turn it off when a clean stop is not possible.
Stop-VM -Name $vm -Force -ErrorAction SilentlyContinue
if ((Get-VM -Name $vm).State.ToString() -ne 'Off') { Stop-VM -Name $vm -TurnOff -Force }
Start-VMFailover -VMName $vm -Prepare -Confirm:$false
