#!/bin/sh
# SVR1: move the running vm2's disk to DC1's share without stopping vm2, then keep that in its definition.
set -eu
if ! virsh -q domblklist vm2 | grep -q /mnt/smb/vm2.qcow2; then
    virsh blockcopy vm2 vda /mnt/smb/vm2.qcow2 --wait --pivot --transient-job
fi
# blockcopy changes the running guest only; its persistent definition must follow
virsh -q dumpxml vm2 > /run/vm2.xml
virsh -q define /run/vm2.xml >/dev/null
