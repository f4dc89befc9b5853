# Runs on each Hyper-V host: its live migration settings (Hyper-V Settings > Live Migrations).
$h = Get-VMHost
$networks = foreach ($n in Get-VMMigrationNetwork) {
    [pscustomobject]@{ Subnet = [string]$n.Subnet; Priority = [int]$n.Priority }
}
[pscustomobject]@{
    VirtualMachineMigrationEnabled            = [bool]$h.VirtualMachineMigrationEnabled
    VirtualMachineMigrationAuthenticationType = $h.VirtualMachineMigrationAuthenticationType.ToString()
    UseAnyNetworkForMigration                 = [bool]$h.UseAnyNetworkForMigration
    MaximumVirtualMachineMigrations           = [int]$h.MaximumVirtualMachineMigrations
    Networks                                  = @($networks)
}
