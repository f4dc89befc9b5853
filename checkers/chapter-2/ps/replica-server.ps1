# Runs on each Hyper-V host: its Replica server settings and the built-in firewall rule
# "Hyper-V Replica HTTP Listener (TCP-In)", looked up by its locale-independent Name.
$s = Get-VMReplicationServer
$rule = Get-NetFirewallRule -Name 'VIRT-HVRHTTPL-In-TCP-NoScope' -ErrorAction SilentlyContinue
$ruleView = $null
if ($null -ne $rule) {
    $ruleView = [pscustomobject]@{
        Name        = [string]$rule.Name
        DisplayName = [string]$rule.DisplayName
        Enabled     = $rule.Enabled.ToString()
        Action      = $rule.Action.ToString()
    }
}
[pscustomobject]@{
    ReplicationEnabled              = [bool]$s.ReplicationEnabled
    AllowedAuthenticationType       = $s.AllowedAuthenticationType.ToString()
    ReplicationAllowedFromAnyServer = [bool]$s.ReplicationAllowedFromAnyServer
    KerberosAuthenticationPort      = [int]$s.KerberosAuthenticationPort
    DefaultStorageLocation          = [string]$s.DefaultStorageLocation
    FirewallRule                    = $ruleView
}
