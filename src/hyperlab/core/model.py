"""The lab model: topologies (machines and wires) and labs (exercises on a topology).

Field-level rules (types, units, name syntax) live here; rules that relate fields to each
other (a NIC's network exists, an IP sits inside its network, no `requires` cycle) live in
`hyperlab.core.validate`, so that every problem can be reported with its YAML line.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from hyperlab.core.errors import is_control
from hyperlab.core.units import format_size, parse_size

Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]

# NetBIOS/Windows computer names: at most 15 characters, letters, digits and hyphens, not all
# digits. libvirt takes anything we prefix, so Windows is the stricter rule and applies to all.
_NODE_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,13}[A-Za-z0-9])?$")
_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){0,38}[a-z0-9]?$")
_NET_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$")
_FQDN_RE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_NETBIOS_DOMAIN_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,14}$")
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
# Virtual switch names as Hyper-V and Linux bridges both take them, and nothing a script, XML or a
# drawing would read twice: External, Internal2, lan-1.
_SWITCH_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


def _node_name(value: str) -> str:
    if not _NODE_NAME_RE.fullmatch(value):
        raise ValueError(
            f"node name {value!r} is not a valid computer name: use 1-15 letters, digits or hyphens,"
            " not starting or ending with a hyphen (Windows NetBIOS rule)"
        )
    if value.isdigit():
        raise ValueError(f"node name {value!r} cannot be all digits (Windows rule)")
    return value


DEFAULT_URI = "qemu:///system"  # this host's libvirt
CHANNELS = ("agent", "ssh", "winrm")  # the channel names a node, a roster row or --channel may give


def check_id(value: str) -> str:
    """An id (lab, instance, step): returned as is, or ValueError with the rule."""
    if not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid id: use 1-40 lowercase letters, digits and single hyphens,"
            " starting and ending with a letter or digit"
        )
    return value


# libvirt URIs as a roster or --uri may give them: driver[+transport]://[user@][host][:port]/path[?params].
# Host and user may not start with '-' (ssh would read an option) and only harmless parameters pass:
# libvirt's `command=` or `netcat=` would run a program of the file's choosing.
_URI_RE = re.compile(r"(?P<scheme>(?:qemu|test)(?:\+(?:ssh|libssh|libssh2|tcp|tls|unix))?)://"
                     r"(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]{0,31})@)?"
                     r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:]{2,39}\])?"
                     r"(?::(?P<port>[0-9]{1,5}))?"
                     r"(?P<path>/[A-Za-z0-9._/-]{0,200})"
                     r"(?:\?(?P<query>[A-Za-z0-9_=&/.,:-]{0,500}))?")
_URI_PARAMS = {"socket", "keyfile", "no_verify", "no_tty", "known_hosts", "known_hosts_verify", "sshauth", "mode",
               "pkipath"}


def check_uri(value: str) -> str:
    """A libvirt URI: returned as is, or ValueError with the rule."""
    match = _URI_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a libvirt URI such as qemu:///system or qemu+ssh://root@lab-02/system")
    for param in filter(None, (match["query"] or "").split("&")):
        name = param.split("=", 1)[0]
        if name not in _URI_PARAMS:
            raise ValueError(f"{value!r}: the URI parameter {name!r} is not allowed (allowed: {', '.join(sorted(_URI_PARAMS))})")
    return value


def _net_name(value: str) -> str:
    if not _NET_NAME_RE.fullmatch(value):
        raise ValueError(f"network name {value!r} must be 1-31 lowercase letters, digits or hyphens, starting with a letter")
    return value


def _mac(value: str) -> str:
    value = value.lower()
    if not _MAC_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a MAC address such as 52:54:00:12:34:56")
    if int(value[:2], 16) & 1:
        raise ValueError(f"{value!r} is a multicast MAC address; a NIC needs a unicast one (first byte even)")
    return value


def _fqdn(value: str) -> str:
    if not _FQDN_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a lowercase DNS domain name such as kosa.vm")
    return value


def _netbios_domain(value: str) -> str:
    if not _NETBIOS_DOMAIN_RE.fullmatch(value):
        raise ValueError(f"NetBIOS domain name {value!r} must be 1-15 uppercase letters, digits or hyphens")
    return value


def _ifname(value: str) -> str:
    """What Linux takes as an interface name (dev_valid_name), and nothing a shell or XML would read twice."""
    if not _IFNAME_RE.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{value!r} is not a Linux interface name: 1-15 letters, digits, '.', '_' or '-', such as br0")
    return value


def _switch_name(value: str) -> str:
    if not _SWITCH_NAME_RE.fullmatch(value):
        raise ValueError(f"switch name {value!r} must be 1-32 letters, digits, '_' or '-', starting with a letter, such as Internal2")
    return value


def _whole_number(cls: object, value: object) -> object:
    """YAML's `true` is not 1: a count or a score is written as a number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, not {str(value).lower()}")
    return value


NodeName = Annotated[str, AfterValidator(_node_name)]
IfName = Annotated[str, AfterValidator(_ifname)]

Ident = Annotated[str, AfterValidator(check_id)]
NetName = Annotated[str, AfterValidator(_net_name)]
SwitchName = Annotated[str, AfterValidator(_switch_name)]
Mac = Annotated[str, AfterValidator(_mac)]
Fqdn = Annotated[str, AfterValidator(_fqdn)]


class Strict(BaseModel):
    """Unknown keys are mistakes (a typo would otherwise silently do nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _readable(value: str) -> str:
    """Course text is printed to terminals and pages: a YAML escape such as "\\e[31m" may not
    smuggle a control character into it (line breaks and tabs are text)."""
    bad = next((c for c in value if is_control(c) and c not in "\n\t"), None)
    if bad is not None:
        raise ValueError(f"the control character {bad!r} is not course text; remove it")
    return value


Readable = Annotated[str, AfterValidator(_readable)]


class Text(Strict):
    """Course text in both languages; Korean is the course's first language."""

    ko: Readable = Field(min_length=1)
    en: Readable = Field(min_length=1)


# ---------------------------------------------------------------- topology


class Network(Strict):
    cidr: IPv4Network
    mode: Literal["nat", "isolated", "route", "bridge"] = "isolated"
    host: IPv4Address | None = Field(
        None, description="The host side's address as the lesson shows it (e.g. VMware's NAT at .2)."
    )
    gateway: IPv4Address | None = Field(
        None, description="Default gateway for nodes on this network; defaults to `host` for nat and route networks."
    )
    dhcp: bool = False
    dns: list[IPv4Address] = Field(default_factory=list, description="DNS servers nodes on this network use.")
    bridge: IfName | None = Field(None, description="mode bridge only: the existing host bridge to attach to.")

    @property
    def effective_gateway(self) -> IPv4Address | None:
        if self.gateway is not None:
            return self.gateway
        return self.host if self.mode in ("nat", "route") else None


class Nic(Strict):
    network: NetName
    ip: IPv4Address | None = Field(None, description="The address the lesson gives this NIC.")
    mac: Mac | None = None
    set_by: Literal["lab", "student"] = Field(
        "lab", description="`student`: the address is part of the exercise; the lab leaves the NIC unconfigured."
    )


class Disk(Strict):
    """A data disk: empty (`size`), or a thin overlay of a store image (`image`), e.g. guest-vhdx."""

    size: Size | None = Field(None, description="An empty disk of this size.")
    image: str | None = Field(None, description="An overlay of this store image (a data disk built by `lab image build`).")


class NodeDefaults(Strict):
    image: str | None = None
    vcpus: int | None = Field(None, ge=1, le=64)

    _vcpus_are_numbers = field_validator("vcpus", mode="before")(_whole_number)
    memory: Size | None = None
    firmware: Literal["bios", "uefi"] | None = None
    channel: Literal["agent", "winrm", "ssh"] | None = None
    credentials: str | None = None


class Node(Strict):
    image: str
    vcpus: int = Field(1, ge=1, le=64)

    _vcpus_are_numbers = field_validator("vcpus", mode="before")(_whole_number)
    memory: Size = 1 << 30
    disks: list[Disk] = Field(default_factory=list)
    nics: list[Nic] = Field(default_factory=list)
    nested: bool = Field(False, description="Hosts its own guests: exposes hardware virtualization (vmx/svm).")
    firmware: Literal["bios", "uefi"] = "bios"
    secure_boot: bool = False
    tpm: bool = Field(False, description="A TPM 2.0 (swtpm) device.")
    roles: list[str] = Field(default_factory=list)
    channel: Literal["agent", "winrm", "ssh"] = "agent"
    credentials: str | None = Field(None, description="Name of the secret holding this node's admin credentials.")
    first_boot: list[str] = Field(default_factory=list, description="Scripts run once at first boot, relative to the YAML file.")
    evmcs: bool | None = Field(None, description="Nested Hyper-V on an Intel KVM host: the enlightened VMCS. Default: on for "
                                              "nested Windows nodes on Intel, off elsewhere; set false where Hyper-V fails "
                                              "with 'eVMCS version range error' (CPUs without APICv, some Atom, Celeron and "
                                              "Pentium parts); `lab doctor` says when.")
    nic_model: Literal["virtio", "e1000e"] | None = Field(None, description="The NICs' device model. Default: e1000e for nested "
                                                                         "Windows nodes (virtio-net crawls at KB/s once the "
                                                                         "Hyper-V role is on), virtio elsewhere.")


class Domain(Strict):
    fqdn: Fqdn
    netbios: Annotated[str, AfterValidator(_netbios_domain)]


class Topology(Strict):
    name: Ident
    description: str | None = None
    networks: dict[NetName, Network] = Field(min_length=1)
    defaults: NodeDefaults | None = None
    nodes: dict[NodeName, Node] = Field(min_length=1)
    domain: Domain | None = None


# ---------------------------------------------------------------- lab


class Action(Strict):
    """Run a script on nodes: the start state before the student begins, or a step's reference solution."""

    nodes: list[NodeName] = Field(min_length=1)
    run: str = Field(min_length=1, description="Script path relative to the lab folder.")


class Step(Strict):
    id: Ident
    title: Text
    points: int = Field(ge=0, le=1000)
    requires: list[Ident] = Field(default_factory=list)
    nodes: list[str] = Field(default_factory=list, description="Nodes or nested guests the step is about.")
    hint: Text | None = None
    solution: list[Action] = Field(default_factory=list,
                                   description="Reference solution: scripts run by `lab solve`, in order, each on its nodes.")

    _points_are_numbers = field_validator("points", mode="before")(_whole_number)


class Switch(Strict):
    """A virtual switch inside nested hosts (a Hyper-V switch, a Linux bridge)."""

    kind: Literal["external", "internal", "private"]
    uplink: NetName | None = Field(None, description="external only: the topology network the switch bridges to.")
    cidr: IPv4Network | None = Field(None, description="internal/private: the addresses guests use on it.")
    hosts: list[NodeName] = Field(min_length=1)


class GuestNic(Strict):
    switch: SwitchName
    ip: IPv4Interface | None = None
    gateway: IPv4Address | None = None


class Guest(Strict):
    """A guest the student creates inside a nested host; named so checkers and docs can refer to it."""

    host: NodeName
    image: str | None = None
    memory: Size | None = None
    adapter: Literal["legacy", "synthetic"] = Field(
        "legacy", description="Hyper-V guests: the kind of their network adapters. `legacy` (emulated, generation 1) works in "
                              "any guest OS; `synthetic` needs the guest's integration services, which Windows Server 2003 "
                              "guests on Hyper-V 2016 and later do not have.")
    nics: list[GuestNic] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)


class Forward(Strict):
    """A port forward through a router: a connection to `port` on the router's public address reaches
    `to_port` on `to`. What the lab teaches (the checkers prove it from the outside); the diagram
    draws it as an arrow from the public side to the inner service."""

    router: NodeName = Field(description="The node or guest that forwards: it needs a NIC on the public side "
                                         "(a nat, route or bridge network, or an external switch).")
    port: int = Field(ge=1, le=65535, description="The port on the router's public address.")
    to: NodeName = Field(description="The node or guest behind the router that serves it; it shares a network "
                                     "or switch with the router.")
    to_port: int | None = Field(None, ge=1, le=65535, description="The port on `to`. Default: the same as `port`.")
    protocol: Literal["tcp", "udp"] = "tcp"
    step: Ident | None = Field(None, description="The step that makes the forward (its diagram highlights it).")

    _ports_are_numbers = field_validator("port", "to_port", mode="before")(_whole_number)

    @property
    def target_port(self) -> int:
        return self.port if self.to_port is None else self.to_port


class Move(Strict):
    """A guest that moves, or is copied, from its host to another node during the lab: a live
    migration, a storage migration or a replica. The diagram draws it as a dashed edge."""

    guest: NodeName = Field(description="A guest of this lab (`guests:`); it starts on its `host`.")
    kind: Literal["shared-nothing", "shared-storage", "storage", "replica"] = Field(
        description="shared-nothing: the running guest and its disk move to `to`; shared-storage: the running guest "
                    "moves to `to`, its disk stays on a share (SMB live migration); storage: the guest stays, its disk "
                    "moves to a share on `to`; replica: `to` keeps a copy of the guest (Hyper-V Replica).")
    to: NodeName = Field(description="The node that receives it: a nested host, or for `storage` the node holding the share.")
    step: Ident | None = Field(None, description="The step that does it (its diagram highlights it).")


class Lab(Strict):
    id: Ident
    title: Text
    summary: Text | None = None
    topology: Ident = Field(description="Name of a file in topologies/ (without .yaml).")
    variables: dict[str, str | int | bool] = Field(default_factory=dict)
    switches: dict[SwitchName, Switch] = Field(default_factory=dict)
    guests: dict[NodeName, Guest] = Field(default_factory=dict)
    start: list[Action] = Field(default_factory=list)
    personalize: list[Action] = Field(
        default_factory=list,
        description="Run at each `lab up` that starts from prepared layers, after the boot: gives the instance what the "
                    "shared layers must not hold (its own passwords, keys) and restarts what a shutdown stops.")
    steps: list[Step] = Field(min_length=1)
    forwards: list[Forward] = Field(default_factory=list, description="Port forwards through a router node or guest.")
    moves: list[Move] = Field(default_factory=list,
                              description="Live migrations, storage migrations and replicas of guests between nodes.")
