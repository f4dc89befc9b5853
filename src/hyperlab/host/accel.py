"""Which accelerator guests get: KVM where it really works, software emulation (TCG) elsewhere.

`/dev/kvm` existing (and answering the API) is not enough: on some hosts a guest under KVM hangs
right after the kernel's real-mode setup, forever, with no output; on others QEMU aborts at once
(an assertion in its KVM code). So the test is a real boot (`hyperlab.host.accel_probe`): QEMU
runs a test guest (the `tiny` image: kernel + busybox initramfs) under KVM with a hard timeout;
KVM works only if the guest's userspace printed its marker on the serial console. A guest that
stops early is booted once more under TCG, so that a broken test guest is not blamed on KVM.

The verdict is cached in /var/lib/hyperlab/accel.json, keyed by the kernel release, the QEMU
version and whether /dev/kvm exists, so only the first run on a host pays for the test (up to
`KVM_TIMEOUT` seconds on a host where KVM hangs; about a second where it works).

Library code: raises, never prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hyperlab.core.errors import UsageError
from hyperlab.core.plan import Accel
from hyperlab.host.accel_probe import QEMU, ProbeGuest, ProbeResult, run_probe
from hyperlab.host.files import write_atomic

Status = Literal["works", "untested", "missing", "no-access", "no-qemu", "hung", "failed"]
CHOICES = ("auto", "kvm", "tcg")

ENV_ACCEL = "HYPERLAB_ACCEL"
CACHE_PATH = Path("/var/lib/hyperlab/accel.json")
KVM_DEVICE = Path("/dev/kvm")

# The tiny guest reached its marker 3.5-5 s after QEMU started under TCG on a busy 2-core host
# (measured); KVM runs it 5-10x faster, so about a second (not measurable on a host whose KVM
# hangs). 15 s is 3x TCG's time and >10x KVM's: a slow-but-working KVM on a loaded host is not
# taken for a hang, and a hanging host pays it once per (kernel, QEMU, /dev/kvm).
KVM_TIMEOUT = 15.0
TCG_TIMEOUT = 120.0
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
GuestFinder = Callable[[], ProbeGuest | None]  # the test guest, looked for only when a test must run


class AccelUnavailable(UsageError):
    """`--accel kvm` on a host where KVM does not work: one line with the fix."""


@dataclass(frozen=True)
class AccelReport:
    """The accelerator to use and why, in one line.

    `status` says what was found about KVM; `why` is that fact, `reason` the whole sentence
    (with ": using software emulation" when the answer is TCG because KVM is not usable).
    """

    accel: Accel
    status: Status
    why: str
    tested: bool = False  # a test guest ran under KVM for this verdict (now or when cached)
    seconds: float | None = None  # how long that test took
    cached: bool = False  # read from the cache file, no test run now
    source: str = "detected"  # detected, --accel tcg, HYPERLAB_ACCEL=tcg, ...

    @property
    def reason(self) -> str:
        if self.accel == "tcg" and self.status not in ("works", "untested"):
            return f"{self.why}: using software emulation"
        return self.why

    @property
    def kvm_works(self) -> bool:
        return self.status == "works"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason}


# ------------------------------------------------------------------------------------ facts


def qemu_binary() -> str | None:
    return shutil.which(QEMU)


def qemu_version(qemu: str | None = None) -> str | None:
    """The first line of `qemu-system-x86_64 --version` (with the distribution's revision)."""
    qemu = qemu or qemu_binary()
    if qemu is None:
        return None
    try:
        proc = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = proc.stdout.strip().splitlines()
    return first[0].strip() if proc.returncode == 0 and first else None


def kvm_device_problem(device: Path = KVM_DEVICE) -> tuple[Status, str] | None:
    """None when `device` opens read-write and speaks KVM API 12; else (status, why)."""
    if not device.exists():
        return "missing", f"{device} is missing (no hardware virtualization, or the kvm module is not loaded)"
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return "no-access", f"{device} cannot be opened: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return "no-access", f"{device} does not answer the KVM API: {exc.strerror}"
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return "failed", f"{device} speaks KVM API version {version}, not {KVM_API_VERSION}"
    return None


# ------------------------------------------------------------------------------------ cache


def cache_key(kernel_release: str, qemu_version: str | None, kvm_present: bool) -> dict[str, Any]:
    """What a cached verdict depends on: a new kernel, QEMU or /dev/kvm means test again."""
    return {"kernel": kernel_release, "qemu": qemu_version, "kvm_device": bool(kvm_present)}


def host_cache_key(qemu: str | None = None, device: Path = KVM_DEVICE) -> dict[str, Any]:
    return cache_key(os.uname().release, qemu_version(qemu), device.exists())


def load_cached(path: Path, key: Mapping[str, Any]) -> AccelReport | None:
    """The cached verdict for exactly `key`, or None (no file, damaged, or another key)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != 1 or data.get("key") != dict(key):
        return None
    try:
        return AccelReport(
            accel=data["accel"], status=data["status"], why=data["why"], tested=bool(data.get("tested")),
            seconds=data.get("seconds"), cached=True,
        )
    except (KeyError, TypeError):
        return None


def save_cached(path: Path, key: Mapping[str, Any], report: AccelReport) -> bool:
    """Write the verdict atomically; False (and nothing written) when the folder is not writable."""
    data = {
        "version": 1,
        "key": dict(key),
        "accel": report.accel,
        "status": report.status,
        "why": report.why,
        "tested": report.tested,
        "seconds": report.seconds,
        "tested_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    try:
        write_atomic(path, json.dumps(data, indent=2) + "\n")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _locked(path: Path):  # type: ignore[no-untyped-def]
    """Serialise detections on one host: a second `lab up` waits, then reads the first's verdict."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "w")  # noqa: SIM115
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def verdict(probe: ProbeResult, timeout: float) -> AccelReport:
    """A KVM probe's outcome -> the report (pure)."""
    if probe.reached:
        return AccelReport("kvm", "works", f"KVM works: a test guest reached userspace in {probe.seconds:.1f} s",
                           tested=True, seconds=probe.seconds)
    if probe.timed_out:
        if probe.kernel_started:
            what = f"stuck after {_quote(probe.last_line)}"
        else:
            what = "no kernel output"
        why = f"/dev/kvm exists but a test guest hung under KVM ({what} after {timeout:g} s)"
        return AccelReport("tcg", "hung", why, tested=True, seconds=probe.seconds)
    errors = _errors(probe)
    if errors:
        why = f"QEMU cannot use KVM: {errors[-1][:160]}"
    else:
        why = f"a test guest under KVM stopped before reaching userspace ({_failure(probe, timeout)})"
    return AccelReport("tcg", "failed", why, tested=True, seconds=probe.seconds)


def _errors(probe: ProbeResult) -> list[str]:
    return [line.strip() for line in probe.stderr.splitlines() if line.strip() and "warning:" not in line]


def _failure(probe: ProbeResult, timeout: float) -> str:
    """Why a probe did not reach its marker, in a few words."""
    if probe.timed_out:
        return f"no marker after {timeout:g} s"
    errors = _errors(probe)
    if errors:
        return errors[-1][:160]
    return f"QEMU exit {probe.returncode}" + (f", last output {_quote(probe.last_line)}" if probe.last_line else "")


def _quote(line: str) -> str:
    line = line if len(line) <= 80 else line[:77] + "..."
    return f"'{line}'"


# -------------------------------------------------------------------------------- detection


def no_test_guest() -> ProbeGuest | None:
    return None


def detect_accel(
    find_guest: GuestFinder = no_test_guest,
    *,
    cache_path: Path | None = CACHE_PATH,
    use_cache: bool = True,
    timeout: float = KVM_TIMEOUT,
    device: Path = KVM_DEVICE,
    qemu: str | None = None,
) -> AccelReport:
    """KVM if a test guest really boots under it, else TCG; the reason in one line.

    Cheap checks first (QEMU installed, /dev/kvm present and usable); then the cache; then the
    real test, whose verdict is cached (`cache_path=None` or `use_cache=False`: always test).
    `qemu` is the QEMU binary to test (default: the one on PATH).
    """
    qemu = qemu or qemu_binary()
    if qemu is None:
        return AccelReport("tcg", "no-qemu", f"{QEMU} is not installed")
    problem = kvm_device_problem(device)
    if problem is not None:
        return AccelReport("tcg", problem[0], problem[1])
    key = cache_key(os.uname().release, qemu_version(qemu), device.exists())
    if cache_path is not None and use_cache and (hit := load_cached(cache_path, key)):
        return hit
    guest = find_guest()
    if guest is None:
        # Not cached: once the image exists, the next run tests for real.
        return AccelReport("tcg", "untested",
                           "KVM not tested: no test guest in the image store (build one: lab image build tiny); "
                           "using software emulation until then")
    with _locked(cache_path) if cache_path is not None else contextlib.nullcontext():
        if cache_path is not None and use_cache and (hit := load_cached(cache_path, key)):
            return hit  # another process tested while we waited for the lock
        report = verdict(run_probe("kvm", guest, timeout, qemu), timeout)
        if report.status == "failed":
            # QEMU or the guest stopped early: blame KVM only if the same guest boots without it.
            check = run_probe("tcg", guest, TCG_TIMEOUT, qemu)
            if not check.reached:
                return AccelReport(
                    "tcg", "untested",
                    f"KVM not tested: the test guest {guest.name!r} does not boot under software emulation either "
                    f"({_failure(check, TCG_TIMEOUT)}); rebuild it: lab image build {guest.name} --force")
        if cache_path is not None:
            save_cached(cache_path, key, report)
    return report


def resolve_accel(
    choice: str = "auto",
    *,
    detect: Callable[[], AccelReport] = detect_accel,
    env: Mapping[str, str] | None = None,
    option: str = "--accel",
) -> AccelReport:
    """The CLI's `--accel auto|kvm|tcg` -> the accelerator to use.

    `tcg` always works and tests nothing. `auto` uses `detect` (`detect_accel` with a test guest). `kvm` uses KVM when the
    test passes (or could not run for want of a test guest: the user asked for it) and raises
    `AccelUnavailable` when KVM is known not to work. `HYPERLAB_ACCEL=kvm|tcg|auto` in the
    environment replaces `auto` (for CI); an explicit `--accel kvm|tcg` wins over it.
    """
    env = os.environ if env is None else env
    if choice not in CHOICES:
        raise UsageError(f"{option} must be auto, kvm or tcg, not {choice!r}")
    source = f"{option} {choice}"
    forced = env.get(ENV_ACCEL, "").strip()
    if choice == "auto" and forced:
        if forced not in CHOICES:
            raise UsageError(f"{ENV_ACCEL} must be auto, kvm or tcg, not {forced!r}")
        choice, source = forced, f"{ENV_ACCEL}={forced}"
    if choice == "tcg":
        return AccelReport("tcg", "untested", f"software emulation: chosen with {source}", source=source)
    report = detect()
    if choice == "auto":
        return report
    if report.status == "works":
        return replace(report, source=source)
    if report.status == "untested":
        return AccelReport("kvm", "untested", f"KVM chosen with {source}, not tested (no test guest: lab image build tiny)",
                           source=source)
    raise AccelUnavailable(f"{source}: KVM does not work on this host: {report.why}; use --accel tcg")


__all__ = [
    "AccelReport",
    "AccelUnavailable",
    "cache_key",
    "detect_accel",
    "load_cached",
    "resolve_accel",
    "save_cached",
    "verdict",
]
