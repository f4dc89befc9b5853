#!/bin/sh
# Step overlays: one thin overlay per guest, backed by the golden image (a path relative to the
# overlay, so the images folder can move as a whole).
set -eu
cd /var/lib/libvirt/images/active
for vm in vm1 vm2; do
    [ -e "$vm.qcow2" ] || qemu-img create -f qcow2 -b ../golden/tiny.qcow2 -F qcow2 "$vm.qcow2"
done
qemu-img info -U --backing-chain vm1.qcow2
