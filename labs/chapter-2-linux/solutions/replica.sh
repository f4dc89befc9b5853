#!/bin/sh
# SVR2: replicate linux01 to SVR1 every replication interval (lab variable replication_interval_seconds:
# 300 s like Hyper-V Replica's 5 minutes; shorter in CI): a full copy first, then only the blocks
# written since the last copy (libvirt checkpoints = qcow2 dirty bitmaps), merged into the replica on SVR1.
set -eu
. /etc/hyperlab/secrets/lab.env
install -m 0755 /dev/stdin /usr/local/sbin/replicate-guest <<'SCRIPT'
#!/bin/sh
# replicate-guest DOMAIN TARGET-HOST: push DOMAIN's disk changes since the last run to TARGET-HOST.
set -eu
DOM=$1
TARGET=$2
DIR=/var/lib/libvirt/images/replica
WORK=/var/tmp/replica-$DOM
# one SSH connection for the whole run: each new handshake costs seconds on a slow host
OPTS="-o BatchMode=yes -o ControlMaster=auto -o ControlPath=/run/replicate-%h.ssh -o ControlPersist=60"
mkdir -p "$WORK"
ssh $OPTS "root@$TARGET" "mkdir -p $DIR"
LAST=$(virsh -q checkpoint-list "$DOM" --name 2>/dev/null | tail -n 1)
NEXT=r$(date +%s)
rm -f "$WORK/delta.qcow2"
if [ -n "$LAST" ] && ssh $OPTS "root@$TARGET" "test -f $DIR/$DOM.qcow2"; then
    INCREMENTAL="<incremental>$LAST</incremental>"
else
    INCREMENTAL=""
fi
cat > "$WORK/backup.xml" <<XML
<domainbackup>$INCREMENTAL<disks><disk name='vda' type='file'><target file='$WORK/delta.qcow2'/><driver type='qcow2'/></disk></disks></domainbackup>
XML
printf '<domaincheckpoint><name>%s</name></domaincheckpoint>\n' "$NEXT" > "$WORK/checkpoint.xml"
virsh -q backup-begin "$DOM" "$WORK/backup.xml" "$WORK/checkpoint.xml" >/dev/null
while virsh -q domjobinfo "$DOM" | grep -q 'Job type: *Unbounded'; do sleep 1; done
virsh -q domjobinfo "$DOM" --completed | grep -q 'Job type: *Completed'
scp -q $OPTS "$WORK/delta.qcow2" "root@$TARGET:$DIR/$DOM.delta.qcow2"
if [ -n "$INCREMENTAL" ]; then
    ssh $OPTS "root@$TARGET" "cd $DIR && qemu-img rebase -u -F qcow2 -b $DOM.qcow2 $DOM.delta.qcow2 && qemu-img commit -q $DOM.delta.qcow2 && rm $DOM.delta.qcow2"
else
    ssh $OPTS "root@$TARGET" "cd $DIR && mv -f $DOM.delta.qcow2 $DOM.qcow2"
fi
# older checkpoints are not needed once a newer one has been replicated
for old in $(virsh -q checkpoint-list "$DOM" --name | grep -v "^$NEXT\$"); do virsh -q checkpoint-delete "$DOM" "$old" >/dev/null; done
ssh $OPTS "root@$TARGET" "date +%s > $DIR/$DOM.stamp"
SCRIPT
install -m 0755 /dev/stdin /usr/local/sbin/replicate-schedule <<'SCRIPT'
#!/bin/sh
# replicate-schedule DOMAIN TARGET-HOST SECONDS: run replicate-guest DOMAIN TARGET-HOST every SECONDS s
# from a systemd timer (failover.sh runs it again on the other host to reverse the direction).
set -eu
DOM=$1
TARGET=$2
EVERY=$3
cat > "/etc/systemd/system/replicate-$DOM.service" <<UNIT
[Unit]
Description=Replicate $DOM to $TARGET
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/replicate-guest $DOM $TARGET
UNIT
cat > "/etc/systemd/system/replicate-$DOM.timer" <<UNIT
[Unit]
Description=Replicate $DOM to $TARGET every $EVERY s
[Timer]
OnActiveSec=5
OnUnitActiveSec=$EVERY
AccuracySec=1
[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now "replicate-$DOM.timer"
SCRIPT
/usr/local/sbin/replicate-schedule linux01 svr1.kosa.vm "$replication_interval_seconds"
# the first, full copy now, not at the timer's first tick: the step is done when this returns
systemctl start replicate-linux01.service
