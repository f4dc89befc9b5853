"""Plan -> libvirt XML (domains, networks, the instance's storage pool and volumes), and the domain
that builds a Windows golden image: the one domain writer, so both get the same features.

Built with ElementTree, never string templates, so values are always escaped. Output is
deterministic: attribute order is insertion order and nothing depends on the host.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from hyperlab.core.plan import METADATA_NS, Accel, Plan, PlanNetwork, PlanNode, PlanVolume

ET.register_namespace("hyperlab", METADATA_NS)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.replace("_", "-"): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _metadata(parent: ET.Element, plan: Plan, **extra: str) -> None:
    metadata = _sub(parent, "metadata")
    ET.SubElement(metadata, f"{{{METADATA_NS}}}instance", {
        "lab": plan.lab, "instance": plan.instance, "topology": plan.topology,
        "topology-hash": plan.topology_hash, **extra,
    })


def to_string(element: ET.Element) -> str:
    ET.indent(element, space="  ")
    return ET.tostring(element, encoding="unicode") + "\n"


# -------------------------------------------------------------------------- domains


def domain_xml(plan: Plan, node: PlanNode) -> str:
    windows = node.os == "windows"
    domain = ET.Element("domain", {"type": _domain_type(plan.accel)})
    _sub(domain, "name", node.domain)
    _metadata(domain, plan, node=node.name)
    _sub(domain, "memory", str(node.memory // 1024), unit="KiB")
    _sub(domain, "vcpu", str(node.vcpus), placement="static")
    if node.credentials:
        oem = _sub(_sub(domain, "sysinfo", type="smbios"), "oemStrings")
        for name, value in sorted(node.credentials.items()):
            _sub(oem, "entry", f"io.systemd.credential.binary:{name}={value}")
    _os(domain, node)
    _features(domain, plan.accel, windows=windows, evmcs=node.evmcs,
              smm=node.secure_boot)
    _cpu(domain, plan.accel, nested=node.nested, vendor=plan.cpu_vendor)
    _clock(domain, windows)
    _lifecycle(domain, on_reboot="restart")
    devices = _sub(domain, "devices")
    for volume in node.volumes:
        _disk(devices, volume.path, volume.device)
    if node.unattend_iso is not None:
        _cdrom(devices, node.unattend_iso, "sda")
    for nic in node.nics:
        interface = _sub(devices, "interface", type="network")
        _sub(interface, "mac", address=nic.mac)
        _sub(interface, "source", network=nic.libvirt_network)
        _sub(interface, "model", type=node.nic_model)
        _sub(interface, "address", type="pci", domain="0x0000", bus="0x00", slot=f"0x{nic.pci_slot:02x}", function="0x0")
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    _agent(devices)
    if windows:
        _screen(devices)
    if node.tpm:
        tpm = _sub(devices, "tpm", model="tpm-crb")
        _sub(tpm, "backend", type="emulator", version="2.0")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(devices, "memballoon", model="virtio")
    return to_string(domain)


BUILD_DESCRIPTION = "hyperlab golden image build; removed when the build ends"
BUILD_MEMORY = 4 << 30
BUILD_VCPUS = 2


def build_domain_xml(name: str, disk: Path, iso: Path, virtio_iso: Path | None, answer_iso: Path, accel: Accel,
                     memory: int = BUILD_MEMORY, vcpus: int = BUILD_VCPUS) -> str:
    """The transient-free domain that installs a Windows golden image (`hyperlab.images.windows`).

    The ISO boots first under UEFI, the virtio and answer ISOs beside it; every guest reboot ends
    the domain (`on_reboot=destroy`) so that the build loop sees it and starts it again.
    """
    domain = ET.Element("domain", {"type": _domain_type(accel)})
    _sub(domain, "name", name)
    _sub(domain, "description", BUILD_DESCRIPTION)
    _sub(domain, "memory", str(memory // 1024), unit="KiB")
    _sub(domain, "vcpu", str(vcpus), placement="static")
    os_ = _sub(domain, "os", firmware="efi")
    _sub(os_, "type", "hvm", arch="x86_64", machine="q35")
    _efi(os_, secure_boot=False)
    _features(domain, accel, windows=True, evmcs=False, smm=False)
    _cpu(domain, accel, nested=False, vendor="intel")
    _clock(domain, windows=True)
    _lifecycle(domain, on_reboot="destroy")  # every reboot becomes visible to the build loop
    devices = _sub(domain, "devices")
    _disk(devices, disk, "vda", boot="2")
    for i, (path, boot) in enumerate(((iso, "1"), (virtio_iso, None), (answer_iso, None))):
        if path is not None:
            _cdrom(devices, path, f"sd{chr(ord('a') + i)}", boot)
    _agent(devices)
    _screen(devices)
    _sub(devices, "memballoon", model="virtio")
    return to_string(domain)


def _domain_type(accel: Accel) -> str:
    return "kvm" if accel == "kvm" else "qemu"


def _os(domain: ET.Element, node: PlanNode) -> None:
    os_ = _sub(domain, "os", firmware="efi") if node.firmware == "uefi" else _sub(domain, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine="q35")
    if node.firmware == "uefi":
        _efi(os_, node.secure_boot)
    if node.kernel is not None:
        _sub(os_, "kernel", str(node.kernel))
        _sub(os_, "initrd", str(node.initrd))
        _sub(os_, "cmdline", node.cmdline)
    _sub(os_, "boot", dev="hd")
    if node.credentials:
        _sub(os_, "smbios", mode="sysinfo")


def _efi(os_: ET.Element, secure_boot: bool) -> None:
    firmware = _sub(os_, "firmware")
    state = "yes" if secure_boot else "no"
    _sub(firmware, "feature", enabled=state, name="enrolled-keys")
    _sub(firmware, "feature", enabled=state, name="secure-boot")


def _features(domain: ET.Element, accel: Accel, *, windows: bool, evmcs: bool, smm: bool) -> None:
    features = _sub(domain, "features")
    _sub(features, "acpi")  # without ACPI, `virsh shutdown` cannot work
    _sub(features, "apic")
    if windows and accel == "kvm":
        _hyperv(features, evmcs=evmcs)
    if smm:
        _sub(features, "smm", state="on")
    if accel == "tcg":
        # QEMU's default 1 GiB translation cache cost ~780 MB of host RAM per small guest.
        _sub(_sub(features, "tcg"), "tb-cache", "64", unit="MiB")


def _hyperv(features: ET.Element, evmcs: bool) -> None:
    """Enlightenments that a nested Hyper-V host tolerates under KVM.

    Never `passthrough` mode (it exposes whatever the host has and breaks migration) and
    never a hidden hypervisor CPUID bit (Hyper-V refuses to start its own hypervisor behind one).
    """
    hyperv = _sub(features, "hyperv", mode="custom")
    for name in ("relaxed", "vapic"):
        _sub(hyperv, name, state="on")
    _sub(hyperv, "spinlocks", state="on", retries="8191")
    for name in ("vpindex", "runtime", "synic"):
        _sub(hyperv, name, state="on")
    _sub(_sub(hyperv, "stimer", state="on"), "direct", state="on")
    for name in ("reset", "frequencies", "reenlightenment", "tlbflush", "ipi"):
        _sub(hyperv, name, state="on")
    if evmcs:
        _sub(hyperv, "evmcs", state="on")  # enlightened VMCS exists on Intel only


def _cpu(domain: ET.Element, accel: Accel, *, nested: bool, vendor: str) -> None:
    if accel == "tcg":
        if nested:
            _sub(domain, "cpu", mode="maximum", check="none")
        return
    cpu = _sub(domain, "cpu", mode="host-passthrough", check="none", migratable="on")
    if nested:
        _sub(cpu, "feature", policy="require", name="vmx" if vendor == "intel" else "svm")


def _clock(domain: ET.Element, windows: bool) -> None:
    clock = _sub(domain, "clock", offset="localtime" if windows else "utc")
    _sub(clock, "timer", name="rtc", tickpolicy="catchup")
    _sub(clock, "timer", name="pit", tickpolicy="delay")
    _sub(clock, "timer", name="hpet", present="no")
    if windows:
        _sub(clock, "timer", name="hypervclock", present="yes")


def _lifecycle(domain: ET.Element, on_reboot: str) -> None:
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", on_reboot)
    _sub(domain, "on_crash", "destroy")


def _disk(devices: ET.Element, path: Path, dev: str, boot: str | None = None) -> None:
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    _sub(disk, "source", file=str(path))
    _sub(disk, "target", dev=dev, bus="virtio")
    if boot:
        _sub(disk, "boot", order=boot)


def _cdrom(devices: ET.Element, path: Path, dev: str, boot: str | None = None) -> None:
    cdrom = _sub(devices, "disk", type="file", device="cdrom")
    _sub(cdrom, "driver", name="qemu", type="raw")
    _sub(cdrom, "source", file=str(path))
    _sub(cdrom, "target", dev=dev, bus="sata")
    _sub(cdrom, "readonly")
    if boot:
        _sub(cdrom, "boot", order=boot)


def _agent(devices: ET.Element) -> None:
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")


def _screen(devices: ET.Element) -> None:
    """A tablet, VGA and VNC on 127.0.0.1: Windows needs a screen, and consoles never leave the host."""
    _sub(devices, "input", type="tablet", bus="usb")
    graphics = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
    _sub(graphics, "listen", type="address", address="127.0.0.1")
    _sub(_sub(devices, "video"), "model", type="vga")


# ------------------------------------------------------------------------- networks


def network_xml(plan: Plan, network: PlanNetwork) -> str:
    """Our networks are bare bridges: no <ip>, so libvirt adds no host address and no NAT rule.

    The host side (the lesson's .2, NAT, DHCP) is served from the instance's namespace.
    """
    element = ET.Element("network")
    _sub(element, "name", network.libvirt_name)
    _metadata(element, plan, network=network.name)
    if network.mode == "bridge":
        _sub(element, "forward", mode="bridge")
        _sub(element, "bridge", name=network.bridge)
    else:
        _sub(element, "bridge", name=network.bridge, stp="off", delay="0")
    return to_string(element)


# -------------------------------------------------------------------------- storage


def pool_xml(plan: Plan) -> str:
    """Storage pools and volumes have no <metadata>: ownership lives in the instance record."""
    pool = ET.Element("pool", {"type": "dir"})
    _sub(pool, "name", plan.pool)
    target = _sub(pool, "target")
    _sub(target, "path", str(plan.pool_path))
    return to_string(pool)


def volume_xml(volume: PlanVolume) -> str:
    element = ET.Element("volume", {"type": "file"})
    _sub(element, "name", volume.name)
    _sub(element, "capacity", str(volume.capacity), unit="bytes")
    target = _sub(element, "target")
    _sub(target, "format", type="qcow2")
    _sub(_sub(target, "permissions"), "mode", "0600")
    if volume.backing is not None:
        backing = _sub(element, "backingStore")
        _sub(backing, "path", str(volume.backing))
        _sub(backing, "format", type="qcow2")
    return to_string(element)


def all_xml(plan: Plan) -> dict[str, str]:
    """Every object `lab up` defines, keyed by a file name: network-*, pool, volume-*, domain-*."""
    files = {f"network-{n.name}.xml": network_xml(plan, n) for n in plan.networks}
    files["pool.xml"] = pool_xml(plan)
    for node in plan.nodes:
        for volume in node.volumes:
            files[f"volume-{volume.name.removesuffix('.qcow2')}.xml"] = volume_xml(volume)
    for node in plan.nodes:
        files[f"domain-{node.name}.xml"] = domain_xml(plan, node)
    return files


def snapshot_xml(name: str, description: str) -> str:
    """A checkpoint: an internal snapshot of a running node, its memory included (qcow2 keeps both)."""
    snapshot = ET.Element("domainsnapshot")
    _sub(snapshot, "name", name)
    _sub(snapshot, "description", description)
    _sub(snapshot, "memory", snapshot="internal")
    return to_string(snapshot)
