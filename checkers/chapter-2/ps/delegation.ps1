# Runs on DC1: Kerberos constrained delegation is an attribute of the hosts' computer accounts in AD
# (msDS-AllowedToDelegateTo), so it is read where it lives, not from SVR1 (no double hop).
# The checker defines $Names before this text.
Import-Module ActiveDirectory -ErrorAction Stop
$found = foreach ($name in $Names) {
    $c = Get-ADComputer -Filter "Name -eq '$name'" -Properties 'msDS-AllowedToDelegateTo', 'TrustedForDelegation', 'TrustedToAuthForDelegation'
    if ($null -ne $c) {
        [pscustomobject]@{
            Name                       = [string]$c.Name
            AllowedToDelegateTo        = @($c.'msDS-AllowedToDelegateTo' | ForEach-Object { [string]$_ })
            TrustedForDelegation       = [bool]$c.TrustedForDelegation
            TrustedToAuthForDelegation = [bool]$c.TrustedToAuthForDelegation
        }
    }
}
[pscustomobject]@{ Computers = @($found) }
