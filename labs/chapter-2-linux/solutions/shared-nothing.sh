#!/bin/sh
# SVR1: move the running vm1, disk and all, to SVR2 (shared-nothing live migration).
set -eu
virsh migrate --live --persistent --undefinesource --copy-storage-all vm1 "qemu+ssh://root@svr2.kosa.vm/system?no_tty=1"
