#!/bin/sh
# ROUTER: publish the inner services on the public address (RRAS "Services and Ports").
set -eu
. /etc/hyperlab/secrets/nics.env
PUB=$(ip -br link | awk -v m="$NIC_PUBLIC_MAC" '$3 == m {print $1}')
cat > /etc/nftables.conf <<NFT
#!/usr/sbin/nft -f
flush ruleset
table ip nat {
    chain prerouting {
        type nat hook prerouting priority dstnat;
        iifname "$PUB" tcp dport 23 dnat to 10.10.10.10:23
        iifname "$PUB" tcp dport 35000 dnat to 10.10.20.10:35000
    }
    chain postrouting {
        type nat hook postrouting priority srcnat;
        oifname "$PUB" masquerade
    }
}
NFT
nft -f /etc/nftables.conf
systemctl enable nftables >/dev/null 2>&1
