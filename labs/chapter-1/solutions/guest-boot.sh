#!/bin/sh
# Step guest-boot: define vm1 on its overlay and start it.
# tiny.qcow2 is a data disk without a boot loader: the guest boots by direct kernel boot from the
# kernel and initramfs next to it, with the command line in tiny.cmdline. HV1 is itself emulated
# (see /root/virt-check.txt), so vm1 is emulated too: domain type qemu. Its serial console is
# logged to a file, where the guest's "hyperlab-tiny: ready boot=N" line shows that it booted.
set -eu
images=/var/lib/libvirt/images
accel=$(sed -n 's/^accel: *//p' /root/virt-check.txt 2>/dev/null || true)
[ "$accel" = kvm ] || accel=qemu
# under emulation, a 64 MiB translation cache instead of QEMU's 1 GiB keeps vm1's QEMU small in HV1
tcg=""
[ "$accel" = kvm ] || tcg="<tcg><tb-cache unit='MiB'>64</tb-cache></tcg>"
if ! virsh -c qemu:///system dominfo vm1 >/dev/null 2>&1; then
    cat > /root/vm1.xml <<XML
<domain type='$accel'>
  <name>vm1</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>$images/tiny.vmlinuz</kernel>
    <initrd>$images/tiny.initrd</initrd>
    <cmdline>$(cat $images/tiny.cmdline)</cmdline>
  </os>
  <features>
    <acpi/>
    $tcg
  </features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$images/active/vm1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/vm1-console.log' append='off'/>
    </serial>
    <console type='pty'/>
  </devices>
</domain>
XML
    virsh -c qemu:///system define /root/vm1.xml
fi
[ "$(virsh -c qemu:///system domstate vm1)" = running ] || virsh -c qemu:///system start vm1
# wait for the guest's userspace (minutes: software emulation inside software emulation)
i=0
until grep -q 'hyperlab-tiny: ready boot=' /var/log/libvirt/qemu/vm1-console.log 2>/dev/null; do
    i=$((i + 1))
    [ $i -le 900 ] || { echo "vm1 did not boot in 900 s" >&2; exit 1; }
    sleep 1
done
grep 'hyperlab-tiny:' /var/log/libvirt/qemu/vm1-console.log
