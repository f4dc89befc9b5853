#!/bin/sh
# Start state on DC1: a Samba AD DC for kosa.vm (DNS included) and the NFS export that plays
# the course's \\DC1\smb share. Idempotent: `lab reset DC1` runs it again on a fresh overlay.
set -eu
REALM=KOSA.VM
DOMAIN=KOSA
ADMIN_PASSWORD_FILE=/etc/hyperlab/secrets/domain-admin

if [ ! -f /var/lib/samba/private/sam.ldb ]; then
    rm -f /etc/samba/smb.conf
    samba-tool domain provision --use-rfc2307 --realm="$REALM" --domain="$DOMAIN" \
        --server-role=dc --dns-backend=SAMBA_INTERNAL --host-ip=192.168.1.100 \
        --option="dns forwarder = 192.168.1.2" \
        --adminpass="$(cat "$ADMIN_PASSWORD_FILE")"
    cp /var/lib/samba/private/krb5.conf /etc/krb5.conf
fi
systemctl unmask samba-ad-dc
systemctl enable --now samba-ad-dc

mkdir -p /srv/smb
grep -q '^/srv/smb ' /etc/exports 2>/dev/null ||
    echo '/srv/smb 192.168.1.0/24(rw,sync,no_subtree_check,no_root_squash)' >> /etc/exports
systemctl enable --now nfs-server
exportfs -ra

# `lab up` ends when the start state does: return only once the directory answers.
for _ in $(seq 120); do
    nc -z 127.0.0.1 389 && nc -z 127.0.0.1 53 && exit 0
    sleep 1
done
echo "samba-ad-dc did not start listening on 389 and 53 within 120 s" >&2
exit 1
