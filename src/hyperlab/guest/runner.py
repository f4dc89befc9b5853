"""Scripts in guests, once per overlay, and whether a node is ready.

Readiness of a node = its guest agent answers and its first-boot specialization has finished
(`/run/hyperlab/ready` on Linux, `C:\\hyperlab\\ready` on Windows). A script run by `run_once`
(start state, first boot, a reference solution) leaves a marker in the guest, so running it again
does nothing, and a reset node (a fresh overlay, hence no markers) gets it again. Windows scripts
may reboot the guest: they run through `hyperlab.guest.reboots` until they end without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import libvirt

from hyperlab.core.plan import PlanNode
from hyperlab.guest.agent import AgentChannel, agent_channel
from hyperlab.guest.base import RunResult
from hyperlab.guest.reboots import run_surviving_reboots
from hyperlab.host.screen import ScreenKeeper, check

READY_MARKER = {"linux": "/run/hyperlab/ready", "windows": r"C:\hyperlab\ready"}
STATE_DIR = {"linux": "/var/lib/hyperlab", "windows": r"C:\hyperlab"}
SECRETS_DIR = {"linux": "/etc/hyperlab/secrets", "windows": r"C:\hyperlab\secrets"}
SCRIPT_TIMEOUT = 1800  # seconds for one start-state, first-boot or solution script
Progress = Callable[[str, str], None]  # (node, phase)


class NotReady(Exception):
    """A node did not become ready in time; the message says which and what was last seen."""


class StartStateFailed(Exception):
    """A script failed in a guest; the message carries its command and output."""


def quiet(_node: str, _phase: str) -> None:
    pass


def must(result: RunResult) -> RunResult:
    if not result.ok:
        raise StartStateFailed(result.summary())
    return result


def guest_path_exists(channel: AgentChannel, path: str) -> bool:
    if channel.os == "windows":
        quoted = path.replace("'", "''")
        result = channel.run(f"Test-Path -LiteralPath '{quoted}'", timeout=20)
        return result.ok and result.stdout.strip() == "True"
    return channel.run(["/bin/test", "-e", path], timeout=20).ok


def is_ready(channel: AgentChannel) -> bool:
    return channel.ping() and guest_path_exists(channel, READY_MARKER[channel.os])


def wait_ready(conn: libvirt.virConnect, node: PlanNode, timeout: float, progress: Progress = quiet,
               screen: ScreenKeeper | None = None) -> float:
    """Seconds until the node was ready; NotReady when it stops or the time runs out, ScreenFrozen
    when its `screen` stood still while the agent was silent (a stuck OOBE page, a hung boot)."""
    start = time.monotonic()
    channel = agent_channel(conn, node)
    agent_seen = False
    while time.monotonic() - start < timeout:
        if not channel.domain.isActive():
            raise NotReady(f"{node.name} stopped while booting; see `lab console` or the log in /var/log/libvirt/qemu/{node.domain}.log")
        answers = channel.ping()
        check(screen, answers)
        if answers:
            if not agent_seen:
                agent_seen = True
                progress(node.name, "agent answers")
            if guest_path_exists(channel, READY_MARKER[channel.os]):
                return time.monotonic() - start
        time.sleep(1)
    seen = "its agent answers but specialization has not finished" if agent_seen else "its guest agent never answered"
    raise NotReady(f"{node.name} was not ready after {timeout:.0f}s: {seen}; look at `lab console {node.name}`")


def marker_path(os_name: str, key: str) -> str:
    sep = "\\" if os_name == "windows" else "/"
    return f"{STATE_DIR[os_name]}{sep}{key}.done"


def run_once(channel: AgentChannel, key: str, script: Path, values: dict[str, str],
             report: Callable[[str], None] = lambda _what: None, screen: ScreenKeeper | None = None) -> RunResult | None:
    """Run a script in the guest unless the marker named `key` says it already ran there.

    `values` are files the script finds in the guest's secrets folder (passwords, lab.env); a
    Windows node's `screen` watches the reboots the script may cause.
    """
    os_name = channel.os
    state, secrets_dir = STATE_DIR[os_name], SECRETS_DIR[os_name]
    sep = "\\" if os_name == "windows" else "/"
    marker = marker_path(os_name, key)
    if guest_path_exists(channel, marker):
        return None
    prepare = (f"New-Item -ItemType Directory -Force '{state}','{secrets_dir}' | Out-Null" if os_name == "windows"
               else f"mkdir -p {state} {secrets_dir} && chmod 700 {secrets_dir}")
    must(channel.run(prepare))
    for name, value in values.items():
        channel.write_file(f"{secrets_dir}{sep}{name}", value.encode())
    suffix = script.suffix or (".ps1" if os_name == "windows" else ".sh")
    target = f"{state}{sep}{key}{suffix}"
    channel.write_file(target, script.read_bytes())
    command = (["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", target]
               if os_name == "windows" else ["/bin/sh", target])
    # Windows scripts may reboot the guest (Hyper-V role, DC promotion): run them until they finish without one.
    result = (run_surviving_reboots(channel, command, report, timeout=SCRIPT_TIMEOUT, screen=screen) if os_name == "windows"
              else channel.run(command, timeout=SCRIPT_TIMEOUT))
    if not result.ok:
        raise StartStateFailed(f"{script.name} failed on {channel.node}:\n{result.summary()}")
    channel.write_file(marker, b"")
    return result
