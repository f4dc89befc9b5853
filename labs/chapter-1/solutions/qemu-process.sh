#!/bin/sh
# Step qemu-process: vm1 is a QEMU process like any other; note its PID.
set -eu
pid=$(pgrep -f -- '-name guest=vm1,' | head -n 1)
[ -n "$pid" ] || { echo "no QEMU process of vm1" >&2; exit 1; }
ps -o pid,user,etime,args -p "$pid"
echo "$pid" > /root/vm1.pid
