#!/bin/sh
# Join this hypervisor to kosa.vm with Samba's winbind (the Linux counterpart of "Change... Domain").
# DNS already points at DC1 (192.168.1.100); the join registers the host's A record in the domain.
set -eu
PASS=$(cat /etc/hyperlab/secrets/domain-admin)
HOST=$(hostname -s | tr '[:upper:]' '[:lower:]')
ADDR=$(ip -4 -o addr show scope global | awk '{split($4, a, "/"); print a[1]; exit}')

# the FQDN must resolve locally, or the join cannot name the DNS record it registers
grep -q " $HOST.kosa.vm " /etc/hosts || echo "$ADDR $HOST.kosa.vm $HOST" >> /etc/hosts

cat > /etc/krb5.conf <<'KRB'
[libdefaults]
    default_realm = KOSA.VM
    dns_lookup_realm = false
    dns_lookup_kdc = true
KRB

cat > /etc/samba/smb.conf <<'SMB'
[global]
    workgroup = KOSA
    realm = KOSA.VM
    security = ads
    kerberos method = secrets and keytab
    winbind use default domain = yes
    winbind refresh tickets = yes
    idmap config * : backend = tdb
    idmap config * : range = 3000-7999
    idmap config KOSA : backend = rid
    idmap config KOSA : range = 10000-999999
SMB

net ads testjoin >/dev/null 2>&1 || net ads join -U "Administrator%$PASS"
net ads dns register -U "Administrator%$PASS" "$HOST.kosa.vm" "$ADDR" >/dev/null 2>&1 || true
systemctl enable --now winbind
net ads testjoin
