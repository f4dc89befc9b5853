#!/bin/sh
# SVR1/SVR2 started from the prepared layers: the nested guests stopped with the template's
# shutdown, and their console logs are the template's. Empty them before the start state's script
# starts the guests again, so that what the checkers read of a guest is this instance's.
set -eu
for log in /var/log/libvirt/qemu/*-console.log; do
    [ -e "$log" ] && : > "$log"
done
exit 0
