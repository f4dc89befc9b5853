"""(lab, instance, host facts) -> Plan: every concrete name, address and file `lab up` will create.

Deterministic: the same input gives a byte-identical Plan (no clocks, no randomness, no host
lookups). Instances are kept apart by names derived from (lab, instance), never by changing
what the guests see: 192.168.1.111 stays 192.168.1.111 in every instance. The host side of a
network (e.g. VMware's NAT at .2) lives in a per-instance network namespace, so two students'
identical subnets never meet in the host's routing table. docs/design/instances.md says why.
"""

from __future__ import annotations

import base64
import hashlib
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hyperlab.core.catalog import IMAGES
from hyperlab.core.limits import NIC_FIRST_SLOT
from hyperlab.core.load import LoadedLab
from hyperlab.core.model import Node, Topology

LINUX_CMDLINE = "root=/dev/vda rw console=ttyS0"
METADATA_NS = "https://hyperlab.dev/xmlns/instance/1"
TRANSIT_RANGE = IPv4Network("169.254.0.0/16")  # link-local: never routed beyond the host
Accel = Literal["kvm", "tcg"]  # the domain type: kvm, or qemu (software emulation, TCG)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HostFacts(Frozen):
    """What the plan needs to know about the host. The shell detects it; tests pin it."""

    accel: Accel = "kvm"
    cpu_vendor: Literal["intel", "amd"] = "intel"
    images_dir: Path = Path("/var/lib/libvirt/images/hyperlab")
    instances_dir: Path = Path("/var/lib/libvirt/images/hyperlab-instances")
    ssh_public_key: str | None = None


class PlanNetwork(Frozen):
    name: str  # the topology's name
    libvirt_name: str
    mode: Literal["nat", "isolated", "route", "bridge"]
    cidr: IPv4Network
    bridge: str  # ours (<= 15 characters), or the host's for mode bridge
    host_address: IPv4Interface | None  # held inside the instance's namespace, not on the host
    host_veth: str | None  # namespace end is `host_veth`, bridge end is `host_veth` with 'p' suffix
    dhcp: bool


class PlanNic(Frozen):
    network: str
    libvirt_network: str
    mac: str
    ip: IPv4Interface | None
    gateway: IPv4Address | None
    set_by: Literal["lab", "student"]
    pci_slot: int


class PlanVolume(Frozen):
    name: str
    path: Path
    capacity: int  # bytes
    backing: Path | None  # the golden image for the system disk or an image data disk; None for empty data disks
    device: str  # vda, vdb, ...
    image: str | None = None  # the store image behind `backing` (what to build when it is missing)


class PlanNode(Frozen):
    name: str
    domain: str  # libvirt domain name
    hostname: str
    os: Literal["linux", "windows"]
    image: str
    vcpus: int
    memory: int  # bytes
    firmware: Literal["bios", "uefi"]
    secure_boot: bool
    tpm: bool
    nested: bool
    evmcs: bool  # Hyper-V's enlightened VMCS offered to the guest (nested Windows on Intel)
    nic_model: Literal["virtio", "e1000e"]
    channel: Literal["agent", "winrm", "ssh"]
    roles: list[str]
    wave: int  # nodes of wave 0 boot first (domain controllers), then wave 1 in parallel
    nics: list[PlanNic]
    volumes: list[PlanVolume]
    kernel: Path | None
    initrd: Path | None
    cmdline: str | None
    credentials: dict[str, str] = Field(description="systemd credentials via SMBIOS: name -> base64 value")
    unattend_iso: Path | None


class HostSide(Frozen):
    """Per-instance namespace that plays the host side of the lesson's networks."""

    netns: str
    transit: IPv4Network  # /30 between the host and the namespace
    host_end: IPv4Interface
    netns_end: IPv4Interface
    host_veth: str  # the host's end of the transit link; the namespace's end adds 'n'
    routes: list[IPv4Network]  # host routes into the instance (mode route networks only)


class Plan(Frozen):
    lab: str
    instance: str
    prefix: str
    topology: str
    topology_hash: str
    accel: Accel
    cpu_vendor: Literal["intel", "amd"]
    pool: str
    pool_path: Path
    host_side: HostSide
    networks: list[PlanNetwork]
    nodes: list[PlanNode]

    def node(self, name: str) -> PlanNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def waves(self) -> list[list[str]]:
        return [[n.name for n in self.nodes if n.wave == w] for w in sorted({n.wave for n in self.nodes})]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def topology_hash(topology: Topology) -> str:
    # defaults left out: a new optional field does not make every deployed instance another version
    return _digest(topology.model_dump_json(exclude_defaults=True))[:16]


def _mac(lab: str, instance: str, node: str, index: int, taken: set[str]) -> str:
    salt = 0
    while True:
        h = _digest(lab, instance, node, str(index), str(salt))
        mac = "52:54:00:" + ":".join(h[i : i + 2] for i in range(0, 6, 2))
        if mac not in taken:
            return mac
        salt += 1


def _transit(lab: str, instance: str, avoid: list[IPv4Network]) -> IPv4Network:
    """A /30 in 169.254.0.0/16 derived from the instance, clear of the lab's own networks."""
    subnets = 1 << (30 - TRANSIT_RANGE.prefixlen)
    start = int(_digest(lab, instance, "transit"), 16) % subnets
    for step in range(subnets):
        index = (start + step) % subnets
        net = IPv4Network((int(TRANSIT_RANGE.network_address) + 4 * index, 30))
        if index == 0 or net.overlaps(IPv4Network("169.254.169.0/24")) or any(net.overlaps(a) for a in avoid):
            continue
        return net
    raise ValueError("no free transit subnet")  # unreachable for any real topology


def _hostname(name: str, os: str) -> str:
    return name if os == "windows" else name.lower()


def instance_folder(facts: HostFacts, lab_id: str, instance: str) -> Path:
    """Where an instance keeps what libvirt cannot hold (its volumes, record, secrets, key)."""
    return facts.instances_dir / f"{lab_id}.{instance}"


def plan(loaded: LoadedLab, instance: str, facts: HostFacts | None = None) -> Plan:
    facts = facts or HostFacts()
    lab, topo = loaded.lab, loaded.topology.topology
    prefix = f"hl.{lab.id}.{instance}"
    inst = _digest(lab.id, instance)[:10]
    pool_path = instance_folder(facts, lab.id, instance)

    networks = []
    for name, net in topo.networks.items():
        key = _digest(lab.id, instance, name)[:10]
        host = IPv4Interface(f"{net.host}/{net.cidr.prefixlen}") if net.host else None
        networks.append(
            PlanNetwork(
                name=name,
                libvirt_name=f"{prefix}.{name}",
                mode=net.mode,
                cidr=net.cidr,
                bridge=net.bridge if net.mode == "bridge" and net.bridge else f"hl{key}",
                host_address=host,
                host_veth=f"hv{key}" if host else None,
                dhcp=net.dhcp,
            )
        )
    by_name = {n.name: n for n in networks}

    transit = _transit(lab.id, instance, [n.cidr for n in topo.networks.values()])
    first, second = list(transit.hosts())
    host_side = HostSide(
        netns=f"hl-{inst}",
        transit=transit,
        host_end=IPv4Interface(f"{first}/30"),
        netns_end=IPv4Interface(f"{second}/30"),
        host_veth=f"ht{inst}",
        routes=[n.cidr for n in topo.networks.values() if n.mode == "route"],
    )

    taken = {nic.mac for node in topo.nodes.values() for nic in node.nics if nic.mac}
    nodes = []
    for name, node in topo.nodes.items():
        nics = []
        for i, nic in enumerate(node.nics):
            mac = nic.mac or _mac(lab.id, instance, name, i, taken)
            taken.add(mac)
            net = topo.networks[nic.network]
            nics.append(
                PlanNic(
                    network=nic.network,
                    libvirt_network=by_name[nic.network].libvirt_name,
                    mac=mac,
                    ip=IPv4Interface(f"{nic.ip}/{net.cidr.prefixlen}") if nic.ip else None,
                    gateway=net.effective_gateway if nic.ip != net.effective_gateway else None,
                    set_by=nic.set_by,
                    pci_slot=NIC_FIRST_SLOT + i,
                )
            )
        nodes.append(_plan_node(name, node, nics, topo, prefix, pool_path, facts))

    return Plan(
        lab=lab.id,
        instance=instance,
        prefix=prefix,
        topology=topo.name,
        topology_hash=topology_hash(topo),
        accel=facts.accel,
        cpu_vendor=facts.cpu_vendor,
        pool=prefix,
        pool_path=pool_path,
        host_side=host_side,
        networks=networks,
        nodes=nodes,
    )


def _plan_node(name: str, node: Node, nics: list[PlanNic], topo: Topology, prefix: str,
               pool_path: Path, facts: HostFacts) -> PlanNode:
    spec = IMAGES[node.image]
    golden = facts.images_dir / f"{node.image}.qcow2"
    volumes = [PlanVolume(name=f"{name}.qcow2", path=pool_path / f"{name}.qcow2", capacity=spec.virtual_size,
                          backing=golden, device="vda", image=node.image)]
    for i, disk in enumerate(node.disks, start=1):
        device = "vd" + chr(ord("a") + i)
        if disk.image is not None:  # validation guarantees exactly one of image and size
            volumes.append(PlanVolume(name=f"{name}.disk{i}.qcow2", path=pool_path / f"{name}.disk{i}.qcow2",
                                      capacity=IMAGES[disk.image].virtual_size, device=device, image=disk.image,
                                      backing=facts.images_dir / f"{disk.image}.qcow2"))
        else:
            volumes.append(PlanVolume(name=f"{name}.disk{i}.qcow2", path=pool_path / f"{name}.disk{i}.qcow2",
                                      capacity=disk.size or 0, backing=None, device=device))
    hostname = _hostname(name, spec.os)
    linux_kernel = spec.os == "linux" and spec.boot == "kernel"
    return PlanNode(
        name=name,
        domain=f"{prefix}.{name}",
        hostname=hostname,
        os=spec.os,
        image=node.image,
        vcpus=node.vcpus,
        memory=node.memory,
        firmware=node.firmware,
        secure_boot=node.secure_boot,
        tpm=node.tpm,
        nested=node.nested,
        # enlightened VMCS exists on Intel only: an explicit `evmcs: true` elsewhere would stop QEMU (lab doctor says so)
        evmcs=(node.evmcs is not False) and node.nested and spec.os == "windows" and facts.cpu_vendor == "intel",
        nic_model=node.nic_model or ("e1000e" if node.nested and spec.os == "windows" else "virtio"),
        channel=node.channel,
        roles=list(node.roles),
        wave=0 if "domain-controller" in node.roles else 1,
        nics=nics,
        volumes=volumes,
        kernel=facts.images_dir / f"{node.image}.vmlinuz" if linux_kernel else None,
        initrd=facts.images_dir / f"{node.image}.initrd" if linux_kernel else None,
        cmdline=f"{LINUX_CMDLINE} systemd.hostname={hostname}" if linux_kernel else None,
        # A `router` forwards between the networks the lab addresses for it (no script needed).
        credentials=_linux_credentials(nics, topo, facts, "router" in node.roles) if spec.os == "linux" else {},
        unattend_iso=pool_path / f"{name}.unattend.iso" if spec.os == "windows" else None,
    )


# ------------------------------------------------------------ Linux specialization


def networkd_file(nic: PlanNic, topo: Topology, default_route: bool, forward: bool) -> str:
    """A systemd-networkd unit for one lab-configured NIC, matched by MAC (names may vary)."""
    assert nic.ip is not None
    net = topo.networks[nic.network]
    lines = ["[Match]", f"MACAddress={nic.mac}", "", "[Network]", f"Address={nic.ip}"]
    if forward:
        lines.append("IPForward=ipv4")
    if default_route and nic.gateway is not None:
        lines.append(f"Gateway={nic.gateway}")
    lines += [f"DNS={dns}" for dns in net.dns]
    if topo.domain is not None and net.dns:
        lines.append(f"Domains={topo.domain.fqdn}")
    return "\n".join(lines) + "\n"


def resolv_conf(nics: list[PlanNic], topo: Topology) -> str:
    """The image runs no resolver daemon: DNS servers of the node's lab-set networks, in NIC order."""
    servers = list(dict.fromkeys(str(dns) for nic in nics if nic.ip and nic.set_by == "lab"
                                 for dns in topo.networks[nic.network].dns))
    if not servers:
        return ""
    search = f"search {topo.domain.fqdn}\n" if topo.domain else ""
    return search + "".join(f"nameserver {server}\n" for server in servers)


def _tmpfile_line(path: str, mode: str, content: str) -> str:
    # `f+~`: replace the file even if the image has one; `~`: the argument is base64.
    return f"f+~ {path} {mode} root root - {base64.b64encode(content.encode()).decode()}"


def tmpfiles_lines(nics: list[PlanNic], topo: Topology, ssh_public_key: str | None, router: bool = False) -> list[str]:
    lines = []
    routed = False
    for i, nic in enumerate(nics):
        if nic.ip is None or nic.set_by != "lab":
            continue
        unit = networkd_file(nic, topo, default_route=not routed, forward=router)
        routed = routed or nic.gateway is not None
        lines.append(_tmpfile_line(f"/etc/systemd/network/10-hyperlab-{i}-{nic.network}.network", "0644", unit))
    resolv = resolv_conf(nics, topo)
    if resolv:
        lines.append(_tmpfile_line("/etc/resolv.conf", "0644", resolv))
    if ssh_public_key:
        lines.append("d /root/.ssh 0700 root root -")
        lines.append(_tmpfile_line("/root/.ssh/authorized_keys", "0600", ssh_public_key.strip() + "\n"))
    return lines


def _linux_credentials(nics: list[PlanNic], topo: Topology, facts: HostFacts, router: bool) -> dict[str, str]:
    lines = tmpfiles_lines(nics, topo, facts.ssh_public_key, router)
    if not lines:
        return {}
    return {"tmpfiles.extra": base64.b64encode(("\n".join(lines) + "\n").encode()).decode()}
