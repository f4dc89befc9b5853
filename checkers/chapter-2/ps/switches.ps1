# Runs on each Hyper-V host: its virtual switches, and the host's own IPv4 addresses (an External
# switch shared with the management OS carries the host's address on "vEthernet (<switch>)").
$switches = foreach ($s in Get-VMSwitch) {
    [pscustomobject]@{
        Name                           = [string]$s.Name
        SwitchType                     = $s.SwitchType.ToString()
        NetAdapterInterfaceDescription = [string]$s.NetAdapterInterfaceDescription
        AllowManagementOS              = [bool]$s.AllowManagementOS
    }
}
$addresses = foreach ($a in Get-NetIPAddress -AddressFamily IPv4 -ErrorAction SilentlyContinue) {
    [pscustomobject]@{
        InterfaceAlias = [string]$a.InterfaceAlias
        IPAddress      = [string]$a.IPAddress
        PrefixLength   = [int]$a.PrefixLength
    }
}
[pscustomobject]@{ Switches = @($switches); Addresses = @($addresses) }
