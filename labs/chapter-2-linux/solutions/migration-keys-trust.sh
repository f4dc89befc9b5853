#!/bin/sh
# SVR1 / SVR2, second half: trust both hosts' keys, and know both hosts by their domain names.
set -eu
mkdir -p /root/.ssh && chmod 700 /root/.ssh
touch /root/.ssh/authorized_keys /root/.ssh/known_hosts
cat /mnt/smb/.hosts/*.pub /root/.ssh/authorized_keys | sort -u > /root/.ssh/authorized_keys.new
mv /root/.ssh/authorized_keys.new /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
for h in svr1 svr2; do
    grep -q "^$h.kosa.vm " /root/.ssh/known_hosts || ssh-keyscan -t ed25519 "$h.kosa.vm" >> /root/.ssh/known_hosts 2>/dev/null
done
virsh -c "qemu+ssh://root@svr1.kosa.vm/system?no_tty=1" -q version >/dev/null
virsh -c "qemu+ssh://root@svr2.kosa.vm/system?no_tty=1" -q version >/dev/null
