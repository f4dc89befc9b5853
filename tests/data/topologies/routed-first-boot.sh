#!/bin/sh
# First-boot script of node A in the deploy tests: appends a line, so running twice would show.
echo "first boot of $(hostname)" >> /root/first-boot.log
