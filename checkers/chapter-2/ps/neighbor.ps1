# Runs on the Hyper-V host where the router guest lives: which MAC answers ARP for $Address on the
# External switch. Two pings fill the neighbour cache (a read-only act: ICMP echo, nothing changes).
# The checker defines $Address before this text.
$null = Test-Connection -ComputerName $Address -Count 2 -Quiet -ErrorAction SilentlyContinue
$neighbors = foreach ($n in Get-NetNeighbor -IPAddress $Address -ErrorAction SilentlyContinue) {
    [pscustomobject]@{
        InterfaceAlias   = [string]$n.InterfaceAlias
        LinkLayerAddress = [string]$n.LinkLayerAddress
        State            = $n.State.ToString()
    }
}
[pscustomobject]@{ Address = [string]$Address; Neighbors = @($neighbors) }
