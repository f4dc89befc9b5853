#!/bin/sh
# ROUTER: masquerade what leaves through the public NIC (RRAS "NAT" with Public as the public interface).
set -eu
. /etc/hyperlab/secrets/nics.env
PUB=$(ip -br link | awk -v m="$NIC_PUBLIC_MAC" '$3 == m {print $1}')
cat > /etc/nftables.conf <<NFT
#!/usr/sbin/nft -f
flush ruleset
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "$PUB" masquerade
    }
}
NFT
nft -f /etc/nftables.conf
systemctl enable nftables >/dev/null 2>&1
