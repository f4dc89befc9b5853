# Runs on SVR1 / SVR2 (the host that owns the fact): is this computer a member of the domain, and
# does its secure channel to a DC work? Node.ps_json pipes the output through ConvertTo-Json -Depth 6.
$cs = Get-CimInstance -ClassName Win32_ComputerSystem
$secure = $false
if ($cs.PartOfDomain) {
    # Test-ComputerSecureChannel throws when no DC answers; that is "not joined properly", not an error.
    try { $secure = [bool](Test-ComputerSecureChannel -ErrorAction Stop) } catch { $secure = $false }
}
[pscustomobject]@{
    Name          = [string]$cs.Name
    Domain        = [string]$cs.Domain
    PartOfDomain  = [bool]$cs.PartOfDomain
    SecureChannel = $secure
}
