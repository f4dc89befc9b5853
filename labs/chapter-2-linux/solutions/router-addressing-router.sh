#!/bin/sh
# ROUTER: address the three NICs (Public, GW1, GW2) and turn forwarding on.
# Which NIC is on which network comes from its MAC (/etc/hyperlab/secrets/nics.env).
set -eu
. /etc/hyperlab/secrets/nics.env
unit() {  # network-name mac address [gateway]
    {
        printf '[Match]\nMACAddress=%s\n[Network]\nAddress=%s\nIPForward=yes\nDNS=192.168.1.100\n' "$2" "$3"
        if [ -n "${4:-}" ]; then printf 'Gateway=%s\n' "$4"; fi
    } > "/etc/systemd/network/20-$1.network"
    networkctl reload
    networkctl reconfigure "$(ip -br link | awk -v m="$2" '$3 == m {print $1}')"
}
echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/90-router.conf
sysctl -qw net.ipv4.ip_forward=1
unit public "$NIC_PUBLIC_MAC" 192.168.1.111/24 192.168.1.2
unit gw1 "$NIC_GW1_MAC" 10.10.10.1/24
unit gw2 "$NIC_GW2_MAC" 10.10.20.1/24
