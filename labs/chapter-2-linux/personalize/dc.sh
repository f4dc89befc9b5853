#!/bin/sh
# DC1 started from the prepared layers: the directory there was provisioned with the template's
# password and keys, which every instance on this host shares. Give this instance its own
# (docs/design/prepared.md): the Administrator password from its secrets, a new krbtgt key (twice,
# so that no ticket the template's key signed stays valid) and a new TLS key, then wait until the
# directory answers again, as the start state does.
set -eu
samba-tool user setpassword Administrator --newpassword="$(cat /etc/hyperlab/secrets/domain-admin)" >/dev/null
samba-tool user setpassword krbtgt --random-password >/dev/null
samba-tool user setpassword krbtgt --random-password >/dev/null
rm -f /var/lib/samba/private/tls/*.pem  # samba makes a new key and certificate when it starts (in this folder)
systemctl restart samba-ad-dc
for _ in $(seq 120); do
    nc -z 127.0.0.1 389 && nc -z 127.0.0.1 53 && exit 0
    sleep 1
done
echo "samba-ad-dc did not start listening on 389 and 53 within 120 s" >&2
exit 1
