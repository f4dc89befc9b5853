# Runs on DC1 (AD owns computer accounts). The checker defines $Names before this text.
Import-Module ActiveDirectory -ErrorAction Stop
$found = foreach ($name in $Names) {
    $c = Get-ADComputer -Filter "Name -eq '$name'" -Properties 'DNSHostName', 'Enabled'
    if ($null -ne $c) {
        [pscustomobject]@{
            Name        = [string]$c.Name
            DNSHostName = [string]$c.DNSHostName
            Enabled     = [bool]$c.Enabled
        }
    }
}
[pscustomobject]@{ Computers = @($found) }
