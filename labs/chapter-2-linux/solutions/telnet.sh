#!/bin/sh
# INNER1: the telnet service (inetd) and its account.
set -eu
id teluser >/dev/null 2>&1 || useradd -m -s /bin/bash teluser
echo "teluser:$(cat /etc/hyperlab/secrets/domain-admin)" | chpasswd
grep -q '^telnet' /etc/inetd.conf || sed -i 's/^#<off># *telnet/telnet/' /etc/inetd.conf
grep -q '^telnet' /etc/inetd.conf || echo 'telnet stream tcp nowait root /usr/sbin/tcpd /usr/sbin/telnetd' >> /etc/inetd.conf
systemctl unmask inetd >/dev/null 2>&1 || true
systemctl enable inetd >/dev/null 2>&1
systemctl restart inetd
