#!/bin/sh
# ROUTER: publish the inner services on the public address (RRAS "Services and Ports"),
# in the nat table that the NAT step made; saved so that a reboot keeps them.
set -eu
. /etc/hyperlab/secrets/nics.env
PUB=$(ip -br link | awk -v m="$NIC_PUBLIC_MAC" '$3 == m {print $1}')
nft list chain ip nat prerouting >/dev/null 2>&1 ||
    nft add chain ip nat prerouting '{ type nat hook prerouting priority dstnat; }'
nft flush chain ip nat prerouting
nft add rule ip nat prerouting iifname "$PUB" tcp dport 23 dnat to 10.10.10.10:23
nft add rule ip nat prerouting iifname "$PUB" tcp dport 35000 dnat to 10.10.20.10:35000
{ echo '#!/usr/sbin/nft -f'; echo 'flush ruleset'; nft list ruleset; } > /etc/nftables.conf
