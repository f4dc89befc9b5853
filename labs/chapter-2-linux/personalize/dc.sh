#!/bin/sh
# DC1 started from the prepared layers: the directory there was provisioned with the template's
# password and keys, which every instance on this host shares. Give this instance its own
# (docs/design/prepared.md): the Administrator password from its secrets, a new krbtgt key (twice,
# so that no ticket the template's key signed stays valid) and a new TLS key, then wait until the
# directory answers again, as the start state does.
set -eu
# one Python process for the three changes, as `samba-tool user setpassword` makes each: under
# software emulation every samba-tool start costs about fifteen seconds
python3 - <<'PY'
from samba import generate_random_password
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB

lp = LoadParm()
lp.load_default()
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
with open("/etc/hyperlab/secrets/domain-admin") as f:
    db.setpassword("(sAMAccountName=Administrator)", f.read().rstrip("\n"))
for _ in range(2):
    db.setpassword("(sAMAccountName=krbtgt)", generate_random_password(128, 255))
PY
rm -f /var/lib/samba/private/tls/*.pem  # samba makes a new key and certificate when it starts (in this folder)
systemctl restart samba-ad-dc
for _ in $(seq 120); do
    nc -z 127.0.0.1 389 && nc -z 127.0.0.1 53 && exit 0
    sleep 1
done
echo "samba-ad-dc did not start listening on 389 and 53 within 120 s" >&2
exit 1
