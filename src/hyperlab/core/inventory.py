"""The class's hosts (`hosts.yaml`): where students' instances can run, and how to reach each host.

    ssh_config: ssh_config            # optional: an OpenSSH client config beside this file
    hosts:
      hv1: {ssh: root@10.0.0.11, memory: 64GiB, cpus: 16, disk: 1TiB}
      hv2: {ssh: admin@hv2.school.example:2222, labels: [ssd], jobs: 4}

A host's `memory`, `cpus` and `disk` (what the image store and the instances may use) are read from
the host itself (`lab doctor --json` over SSH) when the file leaves them out; where the file gives all
three, planning contacts no host. `reserve` is memory kept for the host itself (default: 10 %, at
least 2 GiB). `jobs` bounds how many of its students a host works on at once. `lab` is the path
of the `lab` command there when it is not on the login shell's PATH.

Validated like every other file: each problem is one `file:line:column: message`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hyperlab.core.errors import LabError, Problem, display_path
from hyperlab.core.load import parse_model
from hyperlab.core.model import Size, check_id
from hyperlab.core.paths import inside
from hyperlab.core.units import human_size
from hyperlab.core.yamlsrc import Source, read_yaml

GiB = 1 << 30
MAX_HOSTS = 1000
DEFAULT_JOBS = 2

# [user@]host[:port]; host: a DNS name, an IPv4 address or an [IPv6] address, or a Host alias of
# the ssh_config. Nothing may start with '-' (ssh would read an option).
_SSH_RE = re.compile(r"(?:(?P<user>[A-Za-z_][A-Za-z0-9._-]{0,31})@)?"
                     r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])"
                     r"(?::(?P<port>[0-9]{1,5}))?")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,30}[a-z0-9])?")
_COMMAND_RE = re.compile(r"/[A-Za-z0-9._+/-]{1,250}")


@dataclass(frozen=True)
class SshTarget:
    host: str  # without brackets for IPv6
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text


def parse_ssh(value: str) -> SshTarget:
    """`[user@]host[:port]` -> SshTarget, or ValueError with the rule."""
    match = _SSH_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not an SSH target such as root@10.0.0.11, admin@hv1.example or root@hv1:2222")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"{value!r}: port {port} is not 1 to 65535")
    host = match["host"].strip("[]")
    if ".." in host:
        raise ValueError(f"{value!r}: {host!r} is not a host name")
    return SshTarget(host, match["user"], port)


def _ssh(value: str) -> str:
    parse_ssh(value)
    return value


def _label(value: str) -> str:
    if not _LABEL_RE.fullmatch(value):
        raise ValueError(f"label {value!r}: use 1-32 lowercase letters, digits, '.', '_' or '-'")
    return value


def _command(value: str) -> str:
    if not _COMMAND_RE.fullmatch(value) or "/../" in f"{value}/" or "//" in value:
        raise ValueError(f"{value!r} is not an absolute path such as /usr/local/bin/lab")
    return value


def _host_name(value: str) -> str:
    check_id(value)
    return value


class HostSpec(BaseModel):
    """One host of the class: how SSH reaches it, and what it offers the class."""

    model_config = ConfigDict(extra="forbid")

    ssh: Annotated[str, AfterValidator(_ssh)] = Field(description="[user@]host[:port] that SSH reaches the host as.")
    memory: Size | None = Field(default=None, description="Memory of the host (read from the host when left out).")
    cpus: int | None = Field(default=None, ge=1, le=4096, description="CPU threads (read from the host when left out).")
    disk: Size | None = Field(default=None, description="Disk hyperlab may use for the image store and the instances "
                                                        "(read from the host when left out: what they hold plus "
                                                        "what is free).")
    reserve: Size | None = Field(default=None, description="Memory kept for the host itself (default 10 %, at least 2GiB).")
    jobs: int = Field(default=DEFAULT_JOBS, ge=1, le=32, description="Students worked on at once on this host.")
    labels: list[Annotated[str, AfterValidator(_label)]] = Field(default_factory=list, max_length=32,
                                                                 description="Words for people; `lab capacity` shows them.")
    lab: Annotated[str, AfterValidator(_command)] | None = Field(
        default=None, description="Absolute path of the `lab` command on the host (default: `lab` on its PATH).")


class Inventory(BaseModel):
    """A class's hosts (`hosts.yaml`): `lab capacity`, `lab class` and `lab grade --hosts` read it."""

    model_config = ConfigDict(extra="forbid")

    hosts: dict[Annotated[str, AfterValidator(_host_name)], HostSpec] = Field(
        min_length=1, max_length=MAX_HOSTS, description="The hosts by name (1-40 lowercase letters, digits and hyphens); "
                                                         "the roster's host column names them.")
    ssh_config: str | None = Field(default=None, description="An OpenSSH client config file, relative to this file.")


@dataclass(frozen=True)
class LoadedInventory:
    inventory: Inventory
    source: Source
    ssh_config: Path | None  # resolved, inside the file's folder

    @property
    def names(self) -> list[str]:
        return list(self.inventory.hosts)

    def host(self, name: str) -> HostSpec:
        return self.inventory.hosts[name]

    def target(self, name: str) -> SshTarget:
        return parse_ssh(self.inventory.hosts[name].ssh)


def default_reserve(memory: int) -> int:
    return max(2 * GiB, memory // 10)


def is_inventory(source: Source) -> bool:
    """A hosts file, as `lab validate` tells one from a lab or a topology."""
    return "hosts" in source.data and not {"nodes", "steps", "topology"} & source.data.keys()


def load_inventory(path: Path, source: Source | None = None) -> LoadedInventory:
    source = source or read_yaml(path)
    inventory = parse_model(Inventory, source)
    problems: list[Problem] = []
    config = None
    if inventory.ssh_config is not None:
        config = inside(path.parent, inventory.ssh_config)
        if config is None:
            problems.append(source.problem(("ssh_config",), f"ssh_config: {inventory.ssh_config} leaves "
                                           f"{display_path(path.parent)} (symlinks followed); keep it beside {path.name}"))
        elif not config.is_file():
            problems.append(source.problem(("ssh_config",), f"ssh_config: {inventory.ssh_config} not found next to {path.name}"))
    seen: dict[SshTarget, str] = {}
    for name, spec in inventory.hosts.items():
        target = parse_ssh(spec.ssh)
        if target in seen:
            problems.append(source.problem(("hosts", name, "ssh"), f"hosts.{name}.ssh: {spec.ssh} is also host "
                                           f"{seen[target]}; one host, one name"))
        seen.setdefault(target, name)
        if spec.memory is not None:
            reserve = spec.reserve if spec.reserve is not None else default_reserve(spec.memory)
            if reserve >= spec.memory:
                given = spec.reserve is not None
                where = ("hosts", name, "reserve" if given else "memory")
                what = f"reserve {human_size(reserve)}" + ("" if given else " (the default: 10 %, at least 2 GiB)")
                problems.append(source.problem(where, f"hosts.{name}: {what} leaves nothing of its memory "
                                               f"{human_size(spec.memory)} for students; set `reserve:` below it"))
    if problems:
        raise LabError(problems)
    return LoadedInventory(inventory, source, config)
