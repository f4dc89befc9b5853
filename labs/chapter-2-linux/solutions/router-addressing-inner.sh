#!/bin/sh
# INNER1 / INNER2: the one NIC's lesson address, with the router as default gateway.
set -eu
. /etc/hyperlab/secrets/nics.env
case "$(hostname -s | tr '[:upper:]' '[:lower:]')" in
    inner1) MAC=$NIC_GW1_MAC; ADDR=10.10.10.10/24; GW=10.10.10.1 ;;
    inner2) MAC=$NIC_GW2_MAC; ADDR=10.10.20.10/24; GW=10.10.20.1 ;;
    *) echo "not an inner host: $(hostname)" >&2; exit 1 ;;
esac
printf '[Match]\nMACAddress=%s\n[Network]\nAddress=%s\nGateway=%s\nDNS=192.168.1.100\n' "$MAC" "$ADDR" "$GW" \
    > /etc/systemd/network/20-lesson.network
networkctl reload
networkctl reconfigure "$(ip -br link | awk -v m="$MAC" '$3 == m {print $1}')"
