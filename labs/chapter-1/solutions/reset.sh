#!/bin/sh
# Step reset (seed 000): throw vm1's overlay away and make a new one from the golden image.
set -eu
virsh -c qemu:///system destroy vm1 >/dev/null 2>&1 || true
cd /var/lib/libvirt/images/active
rm -f vm1.qcow2
qemu-img create -f qcow2 -b ../golden/tiny.qcow2 -F qcow2 vm1.qcow2
# the last boot's ready line must not count as this boot's: start from an empty console log
rm -f /var/log/libvirt/qemu/vm1-console.log
virsh -c qemu:///system start vm1
i=0
until grep -q 'hyperlab-tiny: ready boot=' /var/log/libvirt/qemu/vm1-console.log 2>/dev/null; do
    i=$((i + 1))
    [ $i -le 900 ] || { echo "vm1 did not boot in 900 s" >&2; exit 1; }
    sleep 1
done
grep 'hyperlab-tiny:' /var/log/libvirt/qemu/vm1-console.log
