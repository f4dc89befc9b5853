#!/bin/sh
set -eu
echo "Welcome to hyperlab" > /etc/motd
