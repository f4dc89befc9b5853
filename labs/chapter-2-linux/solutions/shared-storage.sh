#!/bin/sh
# SVR1: move the running vm3 to SVR2. Its disk is on DC1's share, mounted at /mnt/smb on both hosts,
# so only its memory travels: no --copy-storage.
set -eu
ssh -o BatchMode=yes root@svr2.kosa.vm 'mkdir -p /mnt/smb; mountpoint -q /mnt/smb || mount -t nfs 192.168.1.100:/srv/smb /mnt/smb'
virsh migrate --live --persistent --undefinesource vm3 "qemu+ssh://root@svr2.kosa.vm/system?no_tty=1"
