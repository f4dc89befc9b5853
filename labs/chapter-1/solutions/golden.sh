#!/bin/sh
# Step golden-image: the tiny disk becomes the read-only golden image.
set -eu
golden=/var/lib/libvirt/images/golden/tiny.qcow2
mkdir -p /var/lib/libvirt/images/golden
if [ ! -e "$golden" ]; then
    cp /var/lib/libvirt/images/tiny.qcow2 "$golden.new"
    mv "$golden.new" "$golden"
fi
chmod 444 "$golden"
qemu-img info -U "$golden"
