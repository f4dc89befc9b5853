"""What every channel (agent, ssh, winrm) offers, and the one result type they all return."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Literal, Protocol

from hyperlab.core.plan import Plan

OS = Literal["linux", "windows"]


class ChannelError(Exception):
    """The node cannot be reached (transport, agent, credentials): never the student's fault."""


@dataclass(frozen=True)
class RunResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    truncated: bool = False  # the channel's output limit cut stdout or stderr

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def summary(self) -> str:
        """For failure messages: the command, its exit code and what it printed."""
        state = "timed out" if self.timed_out else f"exit code {self.exit_code}"
        parts = [f"$ {self.command}  ({state}, {self.duration:.1f}s)"]
        if self.stdout.strip():
            parts.append(f"stdout: {self.stdout.strip()[-2000:]}")
        if self.stderr.strip():
            parts.append(f"stderr: {self.stderr.strip()[-2000:]}")
        return "\n".join(parts)


@dataclass(frozen=True)
class Shell:
    """How a command string becomes an argv on a given OS."""

    argv: tuple[str, ...] = field(default=("/bin/sh", "-c"))

    @staticmethod
    def for_os(os_name: OS) -> Shell:
        if os_name == "windows":
            return Shell(("powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command"))
        return Shell()

    def wrap(self, command: str | list[str]) -> list[str]:
        if isinstance(command, list):
            return command
        return [*self.argv, command]


def display(command: str | list[str]) -> str:
    return command if isinstance(command, str) else shlex.join(command)


class Channel(Protocol):
    name: str
    os: OS

    def run(self, command: str | list[str], *, input: bytes | None = None, timeout: float = 120) -> RunResult:
        """A string runs in the OS's shell (sh -c / PowerShell); a list runs as an argv."""
        ...

    def write_file(self, path: str, data: bytes) -> None: ...

    def read_file(self, path: str) -> bytes: ...

    def close(self) -> None: ...


def host_side_address(plan: Plan, node_name: str) -> IPv4Address:
    """The node's first lab-set address on a network that has a host side: what the ssh and winrm
    channels reach from the instance's namespace."""
    node = next((n for n in plan.nodes if n.name == node_name), None)
    if node is None:
        raise ChannelError(f"{node_name} is not a node of lab {plan.lab} "
                           f"(nodes: {', '.join(n.name for n in plan.nodes)})")
    networks = {n.name: n for n in plan.networks}
    for nic in node.nics:
        network = networks.get(nic.network)
        if nic.set_by == "lab" and nic.ip is not None and network is not None and network.host_address is not None:
            return nic.ip.ip
    raise ChannelError(f"{node_name} has no address reachable from the host side; use the agent channel")
