"""The pure parts of accelerator detection: verdicts, cache keying, --accel resolution."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from hyperlab.host import accel
from hyperlab.host.accel import AccelReport, AccelUnavailable, ProbeGuest, ProbeResult, cache_key, detect_accel, load_cached, resolve_accel, save_cached, verdict
from hyperlab.host.facts import cpu_vendor
from hyperlab.host.accel_probe import probe_command
from hyperlab.core.errors import UsageError

HUNG = AccelReport("tcg", "hung", "/dev/kvm exists but a test guest hung under KVM (no kernel output after 15 s)",
                   tested=True, seconds=15.0)
WORKS = AccelReport("kvm", "works", "KVM works: a test guest reached userspace in 1.2 s", tested=True, seconds=1.2)
KEY = cache_key("6.1.0-27-amd64", "QEMU emulator version 7.2.22", True)


def probe(**kw: object) -> ProbeResult:
    base: dict[str, object] = {"accel": "kvm", "reached": False, "timed_out": False, "seconds": 15.0,
                               "returncode": -9, "output": "", "stderr": "", "pid": 1, "tag": "t"}
    base.update(kw)
    return ProbeResult(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ verdicts


def test_a_guest_that_reached_its_marker_means_kvm_works() -> None:
    report = verdict(probe(reached=True, seconds=1.23, output="hyperlab-tiny: ready boot=1\n"), 15)
    assert (report.accel, report.status, report.tested) == ("kvm", "works", True)
    assert report.reason == "KVM works: a test guest reached userspace in 1.2 s"


def test_a_silent_timeout_is_a_hang_and_says_so() -> None:
    bios_only = "SeaBIOS (version 1.16.2)\nBooting from ROM...\nProbing EDD (edd=off to disable)... ok\n"
    report = verdict(probe(timed_out=True, output=bios_only), 15)
    assert (report.accel, report.status) == ("tcg", "hung")
    assert report.reason == ("/dev/kvm exists but a test guest hung under KVM (no kernel output after 15 s): "
                             "using software emulation")


def test_a_timeout_after_kernel_output_names_the_last_line() -> None:
    out = "[    0.000000] Linux version 6.1.0\n[    0.51] smpboot: CPU0: something\n"
    report = verdict(probe(timed_out=True, output=out), 15)
    assert report.status == "hung"
    assert "stuck after '[    0.51] smpboot: CPU0: something' after 15 s" in report.reason


def test_qemu_refusing_kvm_is_reported_with_its_error_not_its_warnings() -> None:
    err = ("qemu-system-x86_64: warning: host doesn't support requested feature\n"
           "Could not access KVM kernel module: Permission denied\nqemu-system-x86_64: failed to initialize kvm\n")
    report = verdict(probe(returncode=1, seconds=0.1, stderr=err), 15)
    assert (report.accel, report.status) == ("tcg", "failed")
    assert report.why == "QEMU cannot use KVM: qemu-system-x86_64: failed to initialize kvm"


def test_a_guest_that_died_quietly_gives_exit_code_and_last_line() -> None:
    report = verdict(probe(returncode=0, seconds=2.0, output="[ 1.0] Kernel panic - not syncing: VFS\n"), 15)
    assert report.status == "failed"
    assert report.why == ("a test guest under KVM stopped before reaching userspace (QEMU exit 0, "
                          "last output '[ 1.0] Kernel panic - not syncing: VFS')")


def test_the_probe_command_is_a_bare_kernel_boot_with_the_console_on_stdout() -> None:
    guest = ProbeGuest("tiny", Path("/s/tiny.vmlinuz"), Path("/s/tiny.initrd"), "hyperlab-tiny: ready boot=")
    kvm = probe_command("kvm", guest, "hyperlab-accel-probe-1")
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"
    assert kvm[kvm.index("-serial") + 1] == "stdio" and "-nodefaults" in kvm and "-no-reboot" in kvm
    assert kvm[kvm.index("-kernel") + 1] == "/s/tiny.vmlinuz" and kvm[kvm.index("-initrd") + 1] == "/s/tiny.initrd"
    assert kvm[kvm.index("-name") + 1] == "hyperlab-accel-probe-1"
    assert "console=ttyS0" in kvm[kvm.index("-append") + 1]
    tcg = probe_command("tcg", guest, "x")
    assert tcg[tcg.index("-accel") + 1] == "tcg" and "-cpu" not in tcg


# --------------------------------------------------------------------------- cache


def test_cache_key_holds_kernel_qemu_and_device_presence() -> None:
    assert KEY == {"kernel": "6.1.0-27-amd64", "qemu": "QEMU emulator version 7.2.22", "kvm_device": True}


def test_a_saved_verdict_is_read_back_for_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "accel.json"
    assert save_cached(path, KEY, HUNG)
    got = load_cached(path, KEY)
    assert got is not None and got.cached
    assert (got.accel, got.status, got.why, got.tested, got.seconds) == ("tcg", "hung", HUNG.why, True, 15.0)
    assert json.loads(path.read_text())["key"] == KEY
    assert [p.name for p in path.parent.iterdir()] == ["accel.json"]  # no temporary file left


@pytest.mark.parametrize("changed", [
    cache_key("6.1.0-28-amd64", "QEMU emulator version 7.2.22", True),  # new kernel
    cache_key("6.1.0-27-amd64", "QEMU emulator version 8.0.0", True),  # new QEMU
    cache_key("6.1.0-27-amd64", "QEMU emulator version 7.2.22", False),  # /dev/kvm gone
])
def test_any_change_of_the_key_means_test_again(tmp_path: Path, changed: dict[str, object]) -> None:
    path = tmp_path / "accel.json"
    save_cached(path, KEY, WORKS)
    assert load_cached(path, changed) is None
    assert load_cached(path, KEY) is not None


@pytest.mark.parametrize("text", ["", "{", "[]", '{"version": 2}', '{"version": 1, "key": {}}'])
def test_a_damaged_or_foreign_cache_file_is_ignored(tmp_path: Path, text: str) -> None:
    path = tmp_path / "accel.json"
    path.write_text(text)
    assert load_cached(path, KEY) is None


def test_an_unwritable_cache_folder_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert save_cached(blocker / "accel.json", KEY, HUNG) is False


def test_detection_uses_the_cache_and_boots_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "qemu_binary", lambda: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(accel, "qemu_version", lambda qemu=None: "QEMU emulator version 7.2.22")
    monkeypatch.setattr(accel, "kvm_device_problem", lambda device: None)

    def no_boot(*args: object, **kw: object) -> None:
        raise AssertionError("booted a test guest although the verdict was cached")

    monkeypatch.setattr(accel, "run_probe", no_boot)
    device = tmp_path / "kvm"
    device.write_text("")
    path = tmp_path / "accel.json"
    save_cached(path, cache_key(os.uname().release, "QEMU emulator version 7.2.22", True), HUNG)
    report = detect_accel(cache_path=path, device=device)
    assert report.cached and report.status == "hung"


def test_without_a_test_guest_detection_says_so_and_caches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperlab.images.store import ImageStore
    from hyperlab.images.test_guest import find_test_guest

    monkeypatch.setattr(accel, "qemu_binary", lambda: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(accel, "qemu_version", lambda qemu=None: "QEMU 7.2")
    monkeypatch.setattr(accel, "kvm_device_problem", lambda device: None)
    path = tmp_path / "accel.json"
    report = detect_accel(lambda: find_test_guest(ImageStore(tmp_path / "empty-store")), cache_path=path,
                          device=tmp_path)
    assert (report.accel, report.status, report.tested) == ("tcg", "untested", False)
    assert "lab image build tiny" in report.reason
    assert not path.exists()


def test_a_missing_device_is_said_without_booting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accel, "qemu_binary", lambda: "/usr/bin/qemu-system-x86_64")
    report = detect_accel(cache_path=tmp_path / "accel.json", device=tmp_path / "kvm")
    assert (report.accel, report.status) == ("tcg", "missing")
    assert report.reason.startswith(f"{tmp_path / 'kvm'} is missing")
    assert report.reason.endswith(": using software emulation")


# ---------------------------------------------------------------------- resolution


def detector(report: AccelReport) -> object:
    calls: list[object] = []

    def detect() -> AccelReport:
        calls.append("detect")
        return report

    detect.calls = calls  # type: ignore[attr-defined]
    return detect


def test_tcg_always_works_and_tests_nothing() -> None:
    detect = detector(HUNG)
    report = resolve_accel("tcg", env={}, detect=detect)
    assert (report.accel, report.source) == ("tcg", "--accel tcg")
    assert detect.calls == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("found", [HUNG, WORKS])
def test_auto_uses_the_detection(found: AccelReport) -> None:
    assert resolve_accel("auto", env={}, detect=detector(found)) == found


def test_kvm_forced_where_it_works_is_kvm() -> None:
    report = resolve_accel("kvm", env={}, detect=detector(WORKS))
    assert (report.accel, report.source) == ("kvm", "--accel kvm")


def test_kvm_forced_where_it_hangs_is_one_line_with_the_fix() -> None:
    with pytest.raises(AccelUnavailable) as caught:
        resolve_accel("kvm", env={}, detect=detector(HUNG))
    message = str(caught.value)
    assert message == ("--accel kvm: KVM does not work on this host: /dev/kvm exists but a test guest hung under "
                       "KVM (no kernel output after 15 s); use --accel tcg")
    assert "\n" not in message
    assert isinstance(caught.value, UsageError)  # the CLI prints it as one line, exit 2


def test_kvm_forced_where_it_could_not_be_tested_is_allowed() -> None:
    untested = AccelReport("tcg", "untested", "KVM not tested: no test guest")
    report = resolve_accel("kvm", env={}, detect=detector(untested))
    assert (report.accel, report.status) == ("kvm", "untested")


def test_kvm_forced_without_a_device_fails() -> None:
    with pytest.raises(AccelUnavailable, match=r"/dev/kvm is missing.*; use --accel tcg$"):
        resolve_accel("kvm", env={}, detect=detector(AccelReport("tcg", "missing", "/dev/kvm is missing")))


def test_the_environment_forces_tcg_for_ci() -> None:
    detect = detector(WORKS)
    report = resolve_accel("auto", env={"HYPERLAB_ACCEL": "tcg"}, detect=detect)
    assert (report.accel, report.source) == ("tcg", "HYPERLAB_ACCEL=tcg")
    assert detect.calls == []  # type: ignore[attr-defined]


def test_the_environment_forcing_kvm_where_it_hangs_fails_naming_the_variable() -> None:
    with pytest.raises(AccelUnavailable, match=r"^HYPERLAB_ACCEL=kvm: KVM does not work"):
        resolve_accel("auto", env={"HYPERLAB_ACCEL": "kvm"}, detect=detector(HUNG))


def test_an_explicit_flag_beats_the_environment() -> None:
    assert resolve_accel("kvm", env={"HYPERLAB_ACCEL": "tcg"}, detect=detector(WORKS)).accel == "kvm"


@pytest.mark.parametrize(("choice", "env", "message"), [
    ("fast", {}, "--accel must be auto, kvm or tcg, not 'fast'"),
    ("auto", {"HYPERLAB_ACCEL": "KVM"}, "HYPERLAB_ACCEL must be auto, kvm or tcg, not 'KVM'"),
])
def test_bad_choices_are_usage_errors(choice: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_accel(choice, env=env, detect=detector(WORKS))
    assert str(caught.value) == message


# ------------------------------------------------------------------------ cpu vendor


@pytest.mark.parametrize(("vendor", "expected"), [
    ("GenuineIntel", "intel"), ("AuthenticAMD", "amd"), ("HygonGenuine", "amd"), ("CentaurHauls", "intel"),
])
def test_cpu_vendor_reads_vendor_id(tmp_path: Path, vendor: str, expected: str) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 6\n\nprocessor\t: 1\nvendor_id\t: {vendor}\n")
    assert cpu_vendor(cpuinfo) == expected


def test_cpu_vendor_of_this_host_matches_proc_cpuinfo() -> None:
    text = Path("/proc/cpuinfo").read_text()
    assert cpu_vendor() == ("amd" if "AuthenticAMD" in text else "intel")


def _fake_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kvm: ProbeResult, tcg: ProbeResult
               ) -> tuple[list[str], Callable[[], ProbeGuest]]:
    """A host with QEMU, a usable /dev/kvm and a test guest, whose probes give `kvm` and `tcg`."""
    monkeypatch.setattr(accel, "qemu_binary", lambda: "/usr/bin/qemu-system-x86_64")
    monkeypatch.setattr(accel, "qemu_version", lambda qemu=None: "QEMU 7.2")
    monkeypatch.setattr(accel, "kvm_device_problem", lambda device: None)
    guest = ProbeGuest("tiny", tmp_path / "k", tmp_path / "i", "hyperlab-tiny: ready boot=")
    runs: list[str] = []

    def fake_run(which: str, g: ProbeGuest, timeout: float, qemu: str | None = None) -> ProbeResult:
        runs.append(which)
        return kvm if which == "kvm" else tcg

    monkeypatch.setattr(accel, "run_probe", fake_run)
    return runs, lambda: guest


def test_a_guest_that_fails_under_tcg_too_is_not_blamed_on_kvm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = probe(returncode=1, seconds=0.1, stderr="qemu: linux kernel too old to load a ram disk\n")
    runs, guest = _fake_host(monkeypatch, tmp_path, kvm=broken, tcg=replace(broken, accel="tcg"))
    path = tmp_path / "accel.json"
    report = detect_accel(guest, cache_path=path, device=tmp_path)
    assert runs == ["kvm", "tcg"]
    assert (report.accel, report.status) == ("tcg", "untested")
    assert report.why == ("KVM not tested: the test guest 'tiny' does not boot under software emulation either "
                          "(qemu: linux kernel too old to load a ram disk); rebuild it: lab image build tiny --force")
    assert not path.exists()  # fixing the image must not need a cache flush


def test_qemu_refusing_kvm_while_tcg_boots_is_a_cached_kvm_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = probe(returncode=1, seconds=0.1, stderr="qemu-system-x86_64: failed to initialize kvm: Invalid argument\n")
    ok = probe(accel="tcg", reached=True, seconds=3.0, output="hyperlab-tiny: ready boot=1\n")
    runs, guest = _fake_host(monkeypatch, tmp_path, kvm=refused, tcg=ok)
    path = tmp_path / "accel.json"
    report = detect_accel(guest, cache_path=path, device=tmp_path)
    assert runs == ["kvm", "tcg"]
    assert (report.accel, report.status) == ("tcg", "failed")
    assert report.reason == ("QEMU cannot use KVM: qemu-system-x86_64: failed to initialize kvm: Invalid argument: "
                             "using software emulation")
    assert load_cached(path, cache_key(os.uname().release, "QEMU 7.2", True)) is not None


def test_a_hang_is_not_rechecked_under_tcg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs, guest = _fake_host(monkeypatch, tmp_path, kvm=probe(timed_out=True), tcg=probe(accel="tcg", reached=True))
    report = detect_accel(guest, cache_path=tmp_path / "accel.json", device=tmp_path)
    assert runs == ["kvm"] and report.status == "hung"
