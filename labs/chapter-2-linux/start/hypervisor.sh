#!/bin/sh
# Start state on SVR1 and SVR2: libvirt running (the Hyper-V role installed), and the host's nested
# guests running from the ticker image that hyperlab copied to /var/lib/libvirt/images:
#   SVR1: vm1 and vm2 on local disks, vm3 on DC1's share (mounted at /mnt/smb);  SVR2: linux01.
# The ticker prints `hyperlab-ticker: up N s` on its console every 5 s, counted in its RAM: a guest
# that moves while running keeps counting on the new host. Joining the domain, the migration
# settings and the guests' movements are the student's.
set -eu
IMAGES=/var/lib/libvirt/images
HOST=$(hostname -s | tr '[:upper:]' '[:lower:]')

systemctl enable --now virtlogd libvirtd
virsh -q pool-info default >/dev/null 2>&1 || {
    # a "default" pool over the images folder: libvirt creates a migrating guest's disk there
    virsh -q pool-define-as default dir --target "$IMAGES" >/dev/null
    virsh -q pool-autostart default >/dev/null
}
virsh -q pool-start default >/dev/null 2>&1 || true

guest() {  # name disk
    [ -f "$2" ] || qemu-img create -q -f qcow2 -b "$IMAGES/ticker.qcow2" -F qcow2 "$2"
    # cache=none: libvirt allows live migration only for disks whose host cache cannot hold stale data
    cat > "/run/$1.xml" <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$IMAGES/ticker.vmlinuz</kernel>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/$1-console.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
    # defined once: a definition without a UUID would be refused once the guest exists (a rerun
    # after a boot from prepared layers, `personalize:`)
    virsh -q dominfo "$1" >/dev/null 2>&1 || virsh -q define "/run/$1.xml" >/dev/null
    [ "$(virsh -q domstate "$1")" = running ] || virsh -q start "$1" >/dev/null
}

counting() {  # name: the ticker has said at least one `up N s` on its console
    for _ in $(seq 120); do
        grep -q 'hyperlab-ticker: up' "/var/log/libvirt/qemu/$1-console.log" 2>/dev/null && return 0
        sleep 1
    done
    echo "nested guest $1 printed no 'hyperlab-ticker: up' line within 120 s" >&2
    return 1
}

case "$HOST" in
    svr1)
        mkdir -p /mnt/smb
        grep -q ' /mnt/smb ' /etc/fstab || echo '192.168.1.100:/srv/smb /mnt/smb nfs defaults,_netdev 0 0' >> /etc/fstab
        # DC1 serves the share; on a loaded host its first ARP reply can come late ("No route to host")
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            mountpoint -q /mnt/smb || mount /mnt/smb && break
            sleep 3
        done
        mountpoint -q /mnt/smb || { echo "cannot mount 192.168.1.100:/srv/smb at /mnt/smb after 10 tries" >&2; exit 1; }
        guest vm1 "$IMAGES/vm1.qcow2"
        guest vm2 "$IMAGES/vm2.qcow2"
        guest vm3 /mnt/smb/vm3.qcow2
        counting vm1; counting vm2; counting vm3
        ;;
    svr2)
        guest linux01 "$IMAGES/linux01.qcow2"
        counting linux01
        ;;
esac
