"""The pure state machines of the Windows build and of reboots under OVMF, with a fake clock,
plus the build domain's XML. Nothing here talks to libvirt."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hyperlab.guest.base import ChannelError, RunResult
from hyperlab.images.common import BuildError
from hyperlab.images.windows import (
    KEY_WINDOW,
    MAX_BOOTS,
    TIMEOUTS,
    BuildWatch,
    Tick,
    build_domain_xml,
)
from hyperlab.guest.reboots import (
    GONE_TIMEOUT,
    HANG_TIMEOUT,
    MAX_RESETS,
    RebootFailed,
    RebootWatch,
    run_surviving_reboots,
    wants_reboot,
)


def test_build_goes_through_every_phase_in_order() -> None:
    seen: list[tuple[str, str]] = []
    watch = BuildWatch(on_phase=lambda old, new: seen.append((old, new)))
    assert watch.step(Tick(1, running=True)) == ["keys"]  # the CD prompt of the first boot
    assert watch.step(Tick(KEY_WINDOW + 1, running=True)) == []  # no more keys later in that boot
    assert watch.step(Tick(600, running=False)) == ["start"]  # Setup rebooted (on_reboot=destroy)
    assert watch.phase == "first boot"
    assert watch.step(Tick(601, running=True)) == []  # no keys after the first boot: the disk boots
    assert watch.step(Tick(700, running=False)) == ["start"]  # specialize -> OOBE reboot
    assert watch.step(Tick(900, running=True, agent=True)) == []
    assert watch.phase == "agent"
    assert watch.step(Tick(905, running=True, agent=True)) == []  # tools still installing
    assert watch.step(Tick(1000, running=True, agent=True, tools="done")) == ["sysprep"]
    assert watch.step(Tick(1001, running=True)) == []
    assert watch.step(Tick(1100, running=False)) == ["done"]  # sysprep /shutdown
    assert [new for _, new in seen] == ["first boot", "agent", "tools", "sysprep", "done"]


def test_failed_tools_stop_the_build_with_the_guests_reason() -> None:
    watch = BuildWatch(phase="agent")
    with pytest.raises(BuildError, match="QEMU-GA is not installed"):
        watch.step(Tick(1, running=True, agent=True, tools="failed", tools_error="QEMU-GA is not installed"))


def test_a_phase_that_takes_too_long_fails_naming_it() -> None:
    watch = BuildWatch()
    with pytest.raises(BuildError, match="'setup' did not finish"):
        watch.step(Tick(TIMEOUTS["setup"] + 1, running=True))


def test_a_boot_loop_is_stopped() -> None:
    watch = BuildWatch(phase="first boot")
    with pytest.raises(BuildError, match="rebooted"):
        for t in range(MAX_BOOTS + 1):
            watch.step(Tick(t, running=False))


def test_build_domain_boots_the_iso_under_uefi_and_sees_every_reboot(tmp_path: Path) -> None:
    xml = build_domain_xml("hl-build-windows-server-2022", tmp_path / "disk.qcow2", tmp_path / "win.iso",
                           tmp_path / "virtio.iso", tmp_path / "answer.iso", "kvm")
    root = ET.fromstring(xml)
    assert root.get("type") == "kvm"
    assert root.find("os").get("firmware") == "efi"  # type: ignore[union-attr]
    assert root.findtext("on_reboot") == "destroy"
    cdroms = root.findall("devices/disk[@device='cdrom']")
    assert [c.find("source").get("file") for c in cdroms] == [  # type: ignore[union-attr]
        str(tmp_path / n) for n in ("win.iso", "virtio.iso", "answer.iso")]
    assert cdroms[0].find("boot").get("order") == "1"  # type: ignore[union-attr]
    assert root.find("devices/disk[@device='disk']/boot").get("order") == "2"  # type: ignore[union-attr]
    assert root.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"  # type: ignore[union-attr]
    assert root.find("features/hyperv") is not None and root.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]
    tcg = ET.fromstring(build_domain_xml("b", tmp_path / "d", tmp_path / "i", None, tmp_path / "a", "tcg"))
    assert tcg.get("type") == "qemu" and len(tcg.findall("devices/disk[@device='cdrom']")) == 2


# ------------------------------------------------------------------------------------ reboots


def test_a_clean_reboot_needs_no_help() -> None:
    watch = RebootWatch("SVR1", since=0)
    assert watch.step(1, agent=True, running=True) == "wait"  # still going down
    assert watch.step(5, agent=False, running=True) == "wait"
    assert watch.step(60, agent=True, running=True) == "back"
    assert watch.resets == 0


def test_a_reboot_that_hangs_under_ovmf_gets_a_hard_reset_then_gives_up() -> None:
    watch = RebootWatch("SVR1", since=0)
    watch.step(1, agent=False, running=True)
    assert watch.step(1 + HANG_TIMEOUT - 1, agent=False, running=True) == "wait"
    assert watch.step(2 + HANG_TIMEOUT, agent=False, running=True) == "reset"
    t = 2 + HANG_TIMEOUT
    for _ in range(MAX_RESETS - 1):
        t += HANG_TIMEOUT + 1
        assert watch.step(t, agent=False, running=True) == "reset"
    with pytest.raises(RebootFailed, match="hard resets"):
        watch.step(t + HANG_TIMEOUT + 1, agent=False, running=True)


def test_a_reboot_that_never_begins_is_forced_and_a_powered_off_guest_is_started() -> None:
    watch = RebootWatch("SVR2", since=0)
    assert watch.step(GONE_TIMEOUT + 1, agent=True, running=True) == "reset"
    assert RebootWatch("SVR2", since=0).step(3, agent=False, running=False) == "start"


def result(stdout: str = "", code: int = 0) -> RunResult:
    return RunResult(command="x", exit_code=code, stdout=stdout, stderr="", duration=0.1)


def test_scripts_ask_for_a_reboot_with_json_or_3010() -> None:
    assert wants_reboot(result('{"state":"installed","reboot":true}\n'))
    assert not wants_reboot(result('{"state":"ready","reboot":false}'))
    assert wants_reboot(result("", 3010))
    assert not wants_reboot(result("plain text"))


class FakeDomain:
    def __init__(self) -> None:
        self.reboots = 0
        self.resets = 0

    def isActive(self) -> bool:
        return True

    def reboot(self, _flags: int) -> None:
        self.reboots += 1

    def reset(self, _flags: int) -> None:
        self.resets += 1


class FakeChannel:
    """Run 1: the guest reboots mid-script. Run 2: the script asks for a reboot. Run 3: done."""

    node = "SVR1"

    def __init__(self) -> None:
        self.domain = FakeDomain()
        self.runs = 0
        self.pings: list[bool] = []

    def run(self, command: Any, timeout: float) -> RunResult:
        self.runs += 1
        if self.runs == 1:
            self.pings = [False, False, True]
            raise ChannelError("cannot reach SVR1 through the guest agent")
        if self.runs == 2:
            self.pings = [True, False, True]
            return result('{"state":"installed","reboot":true}')
        return result('{"state":"ready","reboot":false}')

    def ping(self) -> bool:
        return self.pings.pop(0) if self.pings else True


def test_a_start_action_survives_reboots_and_runs_until_it_is_done() -> None:
    channel = FakeChannel()
    said: list[str] = []
    now = [0.0]
    final = run_surviving_reboots(channel, ["powershell.exe"], said.append, clock=lambda: now[0],
                                  sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert final.stdout == '{"state":"ready","reboot":false}'
    assert channel.runs == 3 and channel.domain.reboots == 1 and channel.domain.resets == 0
    assert any("rebooted during the script" in line for line in said)
    assert any("asks for a reboot" in line for line in said)
