#!/bin/sh
# Start state on SVR1 and SVR2: libvirt running, as a Hyper-V host with the role installed.
# Joining the domain, migration settings and the guests' movements are the student's.
# (The nested guest image arrives with the chapter-2-linux start state of issue 5.)
set -eu
systemctl enable --now virtlogd libvirtd
virsh -c qemu:///system version >/dev/null
