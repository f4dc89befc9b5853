#!/bin/sh
# SVR1 / SVR2, first half of the migration settings: each host's root key, published on DC1's share.
# (libvirt on Linux authenticates the hosts to each other with SSH; Hyper-V would use Kerberos.)
set -eu
[ -f /root/.ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
mkdir -p /mnt/smb
grep -q ' /mnt/smb ' /etc/fstab || echo '192.168.1.100:/srv/smb /mnt/smb nfs defaults,_netdev 0 0' >> /etc/fstab
mountpoint -q /mnt/smb || mount /mnt/smb
mkdir -p /mnt/smb/.hosts
cp /root/.ssh/id_ed25519.pub "/mnt/smb/.hosts/$(hostname -s | tr '[:upper:]' '[:lower:]').pub"
