#!/bin/sh
# Start state on HV1: the tools are installed in the image but libvirt is off, because
# starting it is the student's second step. The tiny kernel, initramfs and data disk are put in
# place by the framework at /var/lib/libvirt/images/tiny.* (with tiny.cmdline, the kernel's
# command line) before this script runs.
set -eu
systemctl disable --now libvirtd >/dev/null 2>&1 || true
mkdir -p /var/lib/libvirt/images/golden /var/lib/libvirt/images/active
# Where HV1 is itself emulated, vm1 is emulated inside emulation. These kernel options took its
# boot from more than 10 minutes (not finished) to under 6 (measured on a 2-core TCG host):
# no Spectre mitigations (retpolines are costly to emulate), and no clock checks that the slow
# emulated clock keeps failing.
cmdline=/var/lib/libvirt/images/tiny.cmdline
if [ -f "$cmdline" ] && ! grep -q 'mitigations=off' "$cmdline"; then
    printf '%s mitigations=off tsc=reliable no_timer_check\n' "$(cat "$cmdline")" > "$cmdline.new"
    chmod 644 "$cmdline.new"
    mv "$cmdline.new" "$cmdline"
fi
