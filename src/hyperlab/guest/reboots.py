"""Start-state scripts on Windows nodes that reboot, and reboots that hang under OVMF.

Two known failure modes of Hyper-V hosts on KVM:

* Installing the Hyper-V role (or promoting a DC) needs a reboot in the middle of the start
  state. A script either reboots the guest itself (the agent vanishes mid-run) or ends by asking
  for one (its last output line is JSON with `"reboot": true`, or it exits 3010). Either way the
  runner waits for the agent to come back and runs the script again: start-state scripts are
  idempotent and carry on from where the guest is.
* Once Hyper-V is enabled, a reboot under OVMF sometimes never comes back (the guest sits in
  firmware with a spinning vCPU). After HANG_TIMEOUT without the agent the domain is reset
  (a hard reset, said in the progress output), at most MAX_RESETS times.

`RebootWatch` is the pure part (a fake clock tests it); `run_surviving_reboots` is the thin shell.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from hyperlab.guest.base import ChannelError, RunResult
from hyperlab.host.screen import ScreenKeeper, check

GONE_TIMEOUT = 180.0  # a requested reboot must take the agent away within this
HANG_TIMEOUT = 600.0  # the agent must be back within this after it went away, else: hard reset
MAX_RESETS = 2
MAX_RUNS = 4  # runs of one script (so at most 3 reboots for one start action)
REBOOT_EXIT_CODE = 3010  # ERROR_SUCCESS_REBOOT_REQUIRED

Action = Literal["wait", "reset", "start", "back"]


class RebootFailed(Exception):
    """The guest did not come back after a reboot; the message says what was tried."""


@dataclass
class RebootWatch:
    """After a reboot began: wait for the agent to go, then to come back; reset a hung guest."""

    node: str
    since: float
    state: Literal["going", "down"] = "going"
    resets: int = 0

    def step(self, now: float, agent: bool, running: bool) -> Action:
        if not running:
            self.state, self.since = "down", now
            return "start"  # powered off instead of restarting: start it again
        if self.state == "going":
            if not agent:
                self.state, self.since = "down", now
                return "wait"
            if now - self.since > GONE_TIMEOUT:
                return self._reset(now, "did not begin its reboot")
            return "wait"
        if agent:
            return "back"
        if now - self.since > HANG_TIMEOUT:
            return self._reset(now, "did not come back from its reboot")
        return "wait"

    def _reset(self, now: float, why: str) -> Action:
        if self.resets >= MAX_RESETS:
            raise RebootFailed(f"{self.node} {why} even after {self.resets} hard resets; "
                               f"look at its screen: lab console {self.node}")
        self.resets += 1
        self.state, self.since = "down", now
        return "reset"


def wants_reboot(result: RunResult) -> bool:
    """The script asks for a reboot: exit code 3010, or a last JSON line with "reboot": true."""
    if result.exit_code == REBOOT_EXIT_CODE:
        return True
    lines = [line for line in result.stdout.strip().splitlines() if line.strip()]
    if not lines:
        return False
    try:
        last = json.loads(lines[-1])
    except ValueError:
        return False
    return isinstance(last, dict) and last.get("reboot") is True


def wait_back(channel: Any, watch: RebootWatch, report: Callable[[str], None],
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
              screen: ScreenKeeper | None = None) -> None:
    """Drive `watch` against the real domain until the agent answers again.

    With a `screen`, a reboot that sits on a frozen screen fails once the keeper says so
    (ScreenFrozen, naming the screenshot; before the hard resets when its `frozen_after` is the
    shorter), and a guest that never came back is reported with its newest screenshot."""
    domain = channel.domain
    while True:
        running = bool(domain.isActive())
        agent = running and channel.ping()
        check(screen, agent)
        try:
            action = watch.step(clock(), agent, running)
        except RebootFailed as exc:
            if screen is None or screen.latest is None:
                raise
            raise RebootFailed(f"{exc}; the newest screenshot is {screen.latest}") from None
        if action == "back":
            return
        if action == "reset":
            report(f"reboot hung (known with Hyper-V under OVMF): hard reset {watch.resets}/{MAX_RESETS}")
            domain.reset(0)
        elif action == "start":
            report("powered off during its reboot: starting it again")
            domain.create()
        sleep(2.0)


def run_surviving_reboots(channel: Any, command: list[str], report: Callable[[str], None], *, timeout: float = 1800,
                          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                          screen: ScreenKeeper | None = None) -> RunResult:
    """Run `command` through the agent; across reboots, run it again until it finishes without one."""
    for run in range(1, MAX_RUNS + 1):
        try:
            result: RunResult = channel.run(command, timeout=timeout)
            check(screen, True)  # it answered: a still screen so far was no hang
        except ChannelError:
            report("the guest rebooted during the script; waiting for it to come back")
            check(screen, True)  # it answered until now; the count starts at its reboot
            wait_back(channel, RebootWatch(channel.node, clock(), "down"), report, clock, sleep, screen)
            continue
        except Exception as exc:  # the agent restarted and forgot the command's pid (AgentCommandError)
            if "guest-exec-status" not in str(exc):
                raise
            report("the guest rebooted during the script; running it again")
            continue
        if not wants_reboot(result):
            return result
        if run == MAX_RUNS:
            break
        report("the script asks for a reboot: rebooting")
        _reboot(channel.domain)
        wait_back(channel, RebootWatch(channel.node, clock()), report, clock, sleep, screen)
    raise RebootFailed(f"{channel.node}: the script still asked for a reboot after {MAX_RUNS} runs")


def _reboot(domain: Any) -> None:
    """A clean reboot (ACPI or agent, libvirt's choice); if it is refused, RebootWatch resets after GONE_TIMEOUT."""
    try:
        domain.reboot(0)
    except Exception:  # libvirt.libvirtError; the watch handles a guest that ignores the request
        pass
