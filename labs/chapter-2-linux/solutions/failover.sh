#!/bin/sh
# SVR2 -> SVR1 planned failover of linux01: stop replicating, shut the primary down, send its last
# state, start the replica on SVR1, and replicate back from SVR1 to SVR2.
set -eu
. /etc/hyperlab/secrets/lab.env
DIR=/var/lib/libvirt/images/replica
# one SSH connection for all the copies: each new handshake costs seconds on a slow host
OPTS="-o BatchMode=yes -o ControlMaster=auto -o ControlPath=/run/failover-%h.ssh -o ControlPersist=60"
systemctl disable --now replicate-linux01.timer >/dev/null 2>&1 || true
# a replication in progress finishes first: it needs the guest running
while [ "$(systemctl show -p ActiveState --value replicate-linux01.service)" = activating ]; do sleep 2; done
if [ "$(virsh -q domstate linux01)" = running ]; then
    virsh -q shutdown linux01 >/dev/null || true
    for _ in $(seq 20); do [ "$(virsh -q domstate linux01)" = "shut off" ] && break; sleep 1; done
    # the ticker does not answer the ACPI power button; it never writes its disk, so switching it
    # off loses nothing (a real guest would get the time it needs to shut down)
    [ "$(virsh -q domstate linux01)" = "shut off" ] || virsh -q destroy linux01 >/dev/null
fi
# the guest is off: its whole disk, flattened, is the last increment
qemu-img convert -O qcow2 /var/lib/libvirt/images/linux01.qcow2 /var/tmp/linux01-last.qcow2
scp -q $OPTS /var/tmp/linux01-last.qcow2 "root@svr1.kosa.vm:$DIR/linux01.qcow2"
rm -f /var/tmp/linux01-last.qcow2
virsh -q dumpxml --inactive linux01 | sed "s#/var/lib/libvirt/images/linux01.qcow2#$DIR/linux01.qcow2#" > /run/linux01.xml
for cp in $(virsh -q checkpoint-list linux01 --name); do virsh -q checkpoint-delete linux01 "$cp" --metadata >/dev/null; done
scp -q $OPTS /run/linux01.xml root@svr1.kosa.vm:/run/linux01.xml
scp -q $OPTS /usr/local/sbin/replicate-guest /usr/local/sbin/replicate-schedule root@svr1.kosa.vm:/usr/local/sbin/
ssh $OPTS root@svr1.kosa.vm "sh -s" <<REMOTE
set -eu
virsh -q define /run/linux01.xml >/dev/null
[ "\$(virsh -q domstate linux01)" = running ] || virsh -q start linux01 >/dev/null
/usr/local/sbin/replicate-schedule linux01 svr2.kosa.vm $replication_interval_seconds
REMOTE
ssh $OPTS -O exit root@svr1.kosa.vm 2>/dev/null || true
