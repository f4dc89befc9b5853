#!/bin/sh
# Step kvm-support: look at what the CPU and the kernel offer, decide which accelerator the
# nested guests can use, and write the findings down in /root/virt-check.txt.
set -eu
flags=$(grep -owE 'vmx|svm' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')
modules=$(lsmod | awk '$1 ~ /^kvm/ {print $1}' | sort | tr '\n' ' ' | sed 's/ $//')
# HV1 is itself a virtual machine. Under KVM, systemd-detect-virt says "kvm" and nested KVM works;
# under QEMU's software emulation it says "qemu": the vmx/svm flag is emulated too, and KVM
# inside an emulated CPU cannot run guests, so they must be emulated as well (domain type qemu).
virt=$(systemd-detect-virt || true)
if [ "$virt" = kvm ] && [ -n "$flags" ] && [ -n "$modules" ] && [ -e /dev/kvm ]; then
    accel=kvm
    why="HV1 runs under KVM with nested virtualization: its CPU shows $flags and the modules $modules are loaded, so guests get hardware acceleration."
else
    accel=qemu
    why="HV1 itself runs under QEMU software emulation (systemd-detect-virt: ${virt:-none}); its ${flags:-no vmx/svm} flag is emulated, and KVM inside an emulated CPU hangs, so guests run as domain type qemu (TCG)."
fi
cat > /root/virt-check.txt <<TXT
cpu-flags: ${flags:-none}
kvm-modules: ${modules:-none}
accel: $accel
why: $why
TXT
cat /root/virt-check.txt
