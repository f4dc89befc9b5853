#!/bin/sh
# Start state on SVR1 and SVR2: libvirt running with the nested `tiny` guest image in place
# (delivered by the framework to /var/lib/libvirt/images/tiny.*). Joining the domain,
# migration settings and the guests' movements are the student's.
set -eu
systemctl enable --now libvirtd virtlogd
test -r /var/lib/libvirt/images/tiny.vmlinuz
test -r /var/lib/libvirt/images/tiny.initrd
