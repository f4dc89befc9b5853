#!/bin/sh
# Start state on HV1: the tools are installed in the image but libvirt is off, because
# starting it is the student's second step. The tiny kernel and initramfs are put in place
# by the framework at /var/lib/libvirt/images/tiny.*.
set -eu
systemctl disable --now libvirtd >/dev/null 2>&1 || true
mkdir -p /var/lib/libvirt/images/golden /var/lib/libvirt/images/active
