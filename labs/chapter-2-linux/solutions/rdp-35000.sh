#!/bin/sh
# INNER2: xrdp on 35000 instead of 3389.
set -eu
sed -i 's/^port=.*/port=35000/' /etc/xrdp/xrdp.ini
systemctl unmask xrdp xrdp-sesman >/dev/null 2>&1 || true
systemctl enable xrdp >/dev/null 2>&1
systemctl restart xrdp
