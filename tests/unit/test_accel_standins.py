"""Accelerator detection against controlled stand-ins for QEMU: each way a host's KVM can fail (or
work), played by a small program on the probe's command line, through the real `run_probe` (a real
process, its own group, the hard timeout, the kill) and the real cache.

KVM fails differently from host to host (../shared/FACTS.md): on some a guest hangs right after
SeaBIOS hands over to the kernel, with no output, forever; on others QEMU aborts at once on an
assertion in its KVM code. Neither can be ordered from a real host, so each is played here, and the
test against this host's own KVM (tests/integration/test_accel.py) asserts only the promise.

The stand-in plays KVM as told by its environment and always boots under TCG (prints the guest's
marker and waits to be killed), like the real tiny guest does. /dev/kvm is a stand-in too: the
device check is told there is one that answers the API.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from hyperlab.host import accel
from hyperlab.host.accel import detect_accel, host_cache_key, load_cached
from hyperlab.host.accel_probe import ProbeGuest, ProbeResult, leftover_probes

MARKER = "hyperlab-tiny: ready boot="
ABORT = ("qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
         "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.")
STAND_IN = f"""\
#!{sys.executable}
import os, signal, sys, time
args = sys.argv[1:]
if args == ["--version"]:
    print("QEMU emulator version 7.2.22 (stand-in)")
    sys.exit(0)
accel = args[args.index("-accel") + 1]
play = {{"kvm": "@KVM@", "tcg": "boot"}}[accel]
out = sys.stdout
if play == "hang":  # SeaBIOS ran and handed over; the kernel never prints a line
    out.write("SeaBIOS (version 1.16.2-debian-1.16.2-1)\\nBooting from ROM..\\n")
    out.flush()
    time.sleep(3600)
elif play == "abort":  # QEMU's KVM code fails an assertion before the guest runs
    sys.stderr.write({ABORT!r} + "\\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGABRT)
elif play == "boot":
    out.write("[    0.000000] Linux version 6.1.0 (stand-in)\\n{MARKER}1\\n")
    out.flush()
    time.sleep(3600)
"""


def stand_in(tmp_path: Path, kvm: str) -> str:
    path = tmp_path / f"qemu-{kvm}"
    path.write_text(STAND_IN.replace("@KVM@", kvm))
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[ProbeResult]:
    """A host with a /dev/kvm that answers the API; every probe of the detection is recorded."""
    monkeypatch.setattr(accel, "kvm_device_problem", lambda device: None)
    probes: list[ProbeResult] = []
    real = accel.run_probe

    def recorded(*args: object, **kwargs: object) -> ProbeResult:
        probes.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return probes[-1]

    monkeypatch.setattr(accel, "run_probe", recorded)
    return probes


def guest(tmp_path: Path) -> ProbeGuest:
    return ProbeGuest("tiny", tmp_path / "tiny.vmlinuz", tmp_path / "tiny.initrd", MARKER)


def gone(probe: ProbeResult) -> bool:
    return not Path(f"/proc/{probe.pid}").exists() and probe.tag not in str(leftover_probes(probe.tag))


def test_a_hang_under_kvm_is_waited_out_killed_and_cached(tmp_path: Path, host: list[ProbeResult]) -> None:
    qemu, cache = stand_in(tmp_path, "hang"), tmp_path / "accel.json"
    start = time.monotonic()
    report = detect_accel(lambda: guest(tmp_path), cache_path=cache, timeout=2.0, qemu=qemu)
    elapsed = time.monotonic() - start
    assert (report.accel, report.status, report.tested) == ("tcg", "hung", True)
    assert report.reason == ("/dev/kvm exists but a test guest hung under KVM (no kernel output after 2 s): "
                             "using software emulation")
    [probe] = host  # a hang is KVM's fault: no second boot under TCG
    assert probe.accel == "kvm" and "Booting from ROM" in probe.output and not probe.kernel_started
    assert probe.timed_out and probe.seconds >= 2.0 and 2.0 <= elapsed < 12
    assert probe.returncode == -signal.SIGKILL and gone(probe)
    cached = load_cached(cache, host_cache_key(qemu))
    assert cached is not None and cached.status == "hung"
    again = detect_accel(lambda: guest(tmp_path), cache_path=cache, timeout=2.0, qemu=qemu)
    assert again.cached and again.why == report.why and len(host) == 1


def test_an_abort_under_kvm_is_said_at_once_with_qemus_own_line(tmp_path: Path, host: list[ProbeResult]) -> None:
    qemu, cache = stand_in(tmp_path, "abort"), tmp_path / "accel.json"
    start = time.monotonic()
    report = detect_accel(lambda: guest(tmp_path), cache_path=cache, timeout=15.0, qemu=qemu)
    assert time.monotonic() - start < 10  # no waiting out the timeout
    assert (report.accel, report.status, report.tested) == ("tcg", "failed", True)
    assert report.reason == f"QEMU cannot use KVM: {ABORT}: using software emulation"
    assert "\n" not in report.reason
    kvm, tcg = host  # stopped early: the same guest is booted under TCG, so the guest is not to blame
    assert kvm.accel == "kvm" and kvm.returncode == -signal.SIGABRT and not kvm.timed_out and gone(kvm)
    assert tcg.accel == "tcg" and tcg.reached and gone(tcg)
    cached = load_cached(cache, host_cache_key(qemu))
    assert cached is not None and cached.status == "failed" and cached.why == report.why


def test_a_kvm_that_boots_the_guest_is_used(tmp_path: Path, host: list[ProbeResult]) -> None:
    qemu = stand_in(tmp_path, "boot")
    report = detect_accel(lambda: guest(tmp_path), cache_path=tmp_path / "accel.json", timeout=15.0, qemu=qemu)
    assert (report.accel, report.status) == ("kvm", "works")
    assert report.reason.startswith("KVM works: a test guest reached userspace in ")
    [probe] = host
    assert probe.reached and probe.returncode == -signal.SIGKILL and gone(probe)


@pytest.mark.parametrize("kvm", ["hang", "abort"])
def test_either_failure_makes_accel_kvm_a_one_line_mistake(tmp_path: Path, host: list[ProbeResult], kvm: str) -> None:
    qemu, cache = stand_in(tmp_path, kvm), tmp_path / "accel.json"

    def detect() -> accel.AccelReport:
        return detect_accel(lambda: guest(tmp_path), cache_path=cache, timeout=2.0, qemu=qemu)

    with pytest.raises(accel.AccelUnavailable) as caught:
        accel.resolve_accel("kvm", env={}, detect=detect)
    message = str(caught.value)
    assert message.startswith("--accel kvm: KVM does not work on this host: ") and message.endswith("; use --accel tcg")
    assert "\n" not in message
    assert accel.resolve_accel("auto", env={}, detect=detect).accel == "tcg"


def test_the_timeout_is_hard_whatever_its_value(tmp_path: Path) -> None:
    start = time.monotonic()
    probe = accel.run_probe("kvm", guest(tmp_path), 1.5, stand_in(tmp_path, "hang"))
    elapsed = time.monotonic() - start
    assert probe.timed_out and not probe.reached
    assert 1.5 <= probe.seconds and elapsed < 5
    assert gone(probe)


def test_the_stand_in_is_what_the_probe_runs(tmp_path: Path) -> None:
    """The stand-in reads the probe's real command line: the accelerator after -accel."""
    probe = accel.run_probe("tcg", guest(tmp_path), 10.0, stand_in(tmp_path, "hang"))
    assert probe.reached and probe.kernel_started
