# Reference solution, step delegation (DC1): SVR1 and SVR2 may delegate to cifs on DC1, and to cifs
# and the migration service on each other (a storage move writes to the destination's SMB), "trust for specified services only". Protocol transition ("use
# any authentication protocol") is on: Microsoft's advice since Windows Server 2016, whose Hyper-V
# management over WinRM cannot forward the ticket otherwise.
$ErrorActionPreference = 'Stop'
Import-Module ActiveDirectory
$fqdn = 'kosa.vm'
foreach ($pair in @(@('SVR1', 'SVR2'), @('SVR2', 'SVR1'))) {
    $me, $other = $pair
    $services = @("cifs/DC1", "cifs/DC1.$fqdn", "cifs/$other", "cifs/$other.$fqdn",
                  "Microsoft Virtual System Migration Service/$other",
                  "Microsoft Virtual System Migration Service/$other.$fqdn")
    $computer = Get-ADComputer -Identity $me -Properties 'msDS-AllowedToDelegateTo'
    $missing = @($services | Where-Object { $computer.'msDS-AllowedToDelegateTo' -notcontains $_ })
    if ($missing.Count -gt 0) {
        Set-ADComputer -Identity $me -Add @{ 'msDS-AllowedToDelegateTo' = $missing }
    }
    Set-ADAccountControl -Identity $computer -TrustedForDelegation $false -TrustedToAuthForDelegation $true
}
