# Runs on each Hyper-V host: the lab's nested guests that live there, with their NICs (switch, MAC,
# and the addresses the guest reports through integration services, if it has them) and disks.
# The checker defines $Names before this text.
$vms = foreach ($vm in Get-VM | Where-Object { $Names -contains $_.Name }) {
    $nics = foreach ($n in Get-VMNetworkAdapter -VM $vm) {
        [pscustomobject]@{
            Name        = [string]$n.Name
            SwitchName  = [string]$n.SwitchName
            IsLegacy    = [bool]$n.IsLegacy
            MacAddress  = [string]$n.MacAddress
            IPAddresses = @($n.IPAddresses | ForEach-Object { [string]$_ })
        }
    }
    $disks = foreach ($d in Get-VMHardDiskDrive -VM $vm) {
        [pscustomobject]@{ Path = [string]$d.Path; ControllerType = $d.ControllerType.ToString() }
    }
    [pscustomobject]@{
        Name          = [string]$vm.Name
        State         = $vm.State.ToString()
        Generation    = [int]$vm.Generation
        MemoryStartup = [int64]$vm.MemoryStartup
        Nics          = @($nics)
        Disks         = @($disks)
    }
}
[pscustomobject]@{ Host = [string]$env:COMPUTERNAME; VMs = @($vms) }
