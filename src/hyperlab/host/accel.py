"""Which accelerator guests get: KVM where it really works, software emulation (TCG) elsewhere.

`/dev/kvm` existing (and answering the API) is not enough: on some hosts a guest under KVM hangs
right after the kernel's real-mode setup, forever, with no output (docs: ../shared/FACTS.md).
So the test is a real boot: QEMU runs the `tiny` image (kernel + busybox initramfs) under KVM
with a hard timeout and its process group is killed afterwards; KVM works only if the guest's
userspace printed its marker on the serial console.

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
import re
import selectors
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hyperlab.core.errors import UsageError
from hyperlab.host.files import write_atomic

if TYPE_CHECKING:
    from hyperlab.images.store import ImageStore

Accel = Literal["kvm", "tcg"]
Status = Literal["works", "untested", "missing", "no-access", "no-qemu", "hung", "failed"]
CHOICES = ("auto", "kvm", "tcg")

ENV_ACCEL = "HYPERLAB_ACCEL"
CACHE_PATH = Path("/var/lib/hyperlab/accel.json")
KVM_DEVICE = Path("/dev/kvm")
QEMU = "qemu-system-x86_64"
PROBE_TAG = "hyperlab-accel-probe"  # in the QEMU command line (-name), to find a leaked probe

# The tiny guest reached its marker 3.5-5 s after QEMU started under TCG on a busy 2-core host
# (measured); KVM runs it 5-10x faster, so about a second (not measurable on a host whose KVM
# hangs). 15 s is 3x TCG's time and >10x KVM's: a slow-but-working KVM on a loaded host is not
# taken for a hang, and a hanging host pays it once per (kernel, QEMU, /dev/kvm).
KVM_TIMEOUT = 15.0
TCG_TIMEOUT = 120.0
PROBE_MEMORY_MIB = 128
DEFAULT_MARKER = "Run /init as init process"  # printed by any Linux kernel as it starts userspace
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12

_ANSI = re.compile(rb"\x1b(\[[0-9;?]*[A-Za-z]|[@-Z\\-_])")
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]|Linux version")


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


@dataclass(frozen=True)
class ProbeGuest:
    name: str
    kernel: Path
    initrd: Path
    marker: str  # a line the guest's userspace prints on the serial console


@dataclass(frozen=True)
class ProbeResult:
    accel: Accel
    reached: bool  # the marker appeared
    timed_out: bool
    seconds: float  # from start to the marker, the exit, or the kill
    returncode: int | None  # QEMU's exit code (negative: killed by that signal)
    output: str = field(repr=False)  # serial console, escape sequences removed
    stderr: str = field(repr=False)
    pid: int = 0
    tag: str = ""

    @property
    def kernel_started(self) -> bool:
        return any(_KERNEL_LINE.search(line) for line in self.output.splitlines())

    @property
    def last_line(self) -> str:
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else ""


# ------------------------------------------------------------------------------------ facts


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> Literal["intel", "amd"]:
    """"intel" or "amd", from /proc/cpuinfo's vendor_id.

    Hygon (an AMD design) counts as amd; every other vendor (Intel, Zhaoxin, VIA) uses Intel's
    VMX, so counts as intel.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "intel"
    match = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    vendor = match.group(1) if match else ""
    return "amd" if vendor in ("AuthenticAMD", "HygonGenuine") else "intel"


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


# ------------------------------------------------------------------------------ test guest


def find_test_guest(store: ImageStore | None = None) -> ProbeGuest | None:
    """The tiny image of the store (marker: its ready line); else any kernel-boot image."""
    from hyperlab.images.store import ImageError, ImageStore

    store = store or ImageStore()
    names = store.names()
    for name in sorted(names, key=lambda n: (n != "tiny", n)):
        try:
            manifest = store.get(name)
        except ImageError:
            continue
        if not (manifest.kernel and manifest.initrd):
            continue
        kernel, initrd = store.file(manifest.kernel), store.file(manifest.initrd)
        if not (kernel.is_file() and initrd.is_file()):
            continue
        marker = manifest.notes.get("ready_marker") if isinstance(manifest.notes, dict) else None
        return ProbeGuest(name, kernel, initrd, str(marker) if marker else DEFAULT_MARKER)
    return None


def probe_command(accel: Accel, guest: ProbeGuest, tag: str, qemu: str = QEMU,
                  memory_mib: int = PROBE_MEMORY_MIB) -> list[str]:
    """QEMU boots the test guest's kernel directly; console on stdout, nothing else attached.

    Under KVM the CPU is `host` (what libvirt's host-passthrough gives lab guests); under TCG
    QEMU's default model (what a lab guest without nesting gets, and faster than `max`). `panic=-1`
    with `-no-reboot` makes a guest that panics end QEMU at once instead of running out the clock.
    `-nographic` also routes the firmware's and the kernel's real-mode setup's messages to the
    serial port, so a hang shows where it stopped.
    """
    return [
        qemu, "-name", tag, "-accel", accel, *(["-cpu", "host"] if accel == "kvm" else []),
        "-m", str(memory_mib), "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
        "-serial", "stdio", "-monitor", "none", "-no-reboot",
        "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
        "-append", "console=ttyS0 panic=-1 hostname=accel-probe",
    ]


def run_probe(accel: Accel, guest: ProbeGuest, timeout: float, qemu: str | None = None) -> ProbeResult:
    """Boot `guest` under `accel` until its marker appears, it exits, or `timeout` passes.

    QEMU runs in its own session (process group); whatever happens, the group is killed and
    QEMU reaped before this returns: no probe outlives the call.
    """
    qemu = qemu or qemu_binary() or QEMU
    tag = f"{PROBE_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    argv = probe_command(accel, guest, tag, qemu)
    marker = guest.marker.encode()
    out, err = bytearray(), bytearray()
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    reached = timed_out = False
    elapsed = reached_at = 0.0
    try:
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        open_streams = 2
        while open_streams:
            left = start + timeout - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(min(left, 0.5)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                key.data.extend(chunk)
            if not reached and marker in out:
                reached, reached_at = True, time.monotonic()
                elapsed = reached_at - start
            if reached and (b"\n" in out[out.index(marker):] or time.monotonic() - reached_at > 1):
                break  # the marker's whole line is read (or a second passed)
        if not reached:
            elapsed = time.monotonic() - start
        sel.close()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=30)
        finally:
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
    if not elapsed:
        elapsed = time.monotonic() - start
    text = _ANSI.sub(b"", bytes(out)).replace(b"\r", b"").decode(errors="replace")
    return ProbeResult(
        accel=accel, reached=reached, timed_out=timed_out and not reached, seconds=round(elapsed, 2),
        returncode=proc.returncode, output=text, stderr=bytes(err).decode(errors="replace"), pid=proc.pid, tag=tag,
    )


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


def detect_accel(
    store: ImageStore | None = None,
    *,
    cache_path: Path | None = CACHE_PATH,
    use_cache: bool = True,
    timeout: float = KVM_TIMEOUT,
    device: Path = KVM_DEVICE,
) -> AccelReport:
    """KVM if a test guest really boots under it, else TCG; the reason in one line.

    Cheap checks first (QEMU installed, /dev/kvm present and usable); then the cache; then the
    real test, whose verdict is cached (`cache_path=None` or `use_cache=False`: always test).
    """
    qemu = qemu_binary()
    if qemu is None:
        return AccelReport("tcg", "no-qemu", f"{QEMU} is not installed")
    problem = kvm_device_problem(device)
    if problem is not None:
        return AccelReport("tcg", problem[0], problem[1])
    key = cache_key(os.uname().release, qemu_version(qemu), device.exists())
    if cache_path is not None and use_cache and (hit := load_cached(cache_path, key)):
        return hit
    guest = find_test_guest(store)
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
    store: ImageStore | None = None,
    *,
    env: Mapping[str, str] | None = None,
    detect: Any = None,
    option: str = "--accel",
) -> AccelReport:
    """The CLI's `--accel auto|kvm|tcg` -> the accelerator to use.

    `tcg` always works and tests nothing. `auto` uses `detect_accel`. `kvm` uses KVM when the
    test passes (or could not run for want of a test guest: the user asked for it) and raises
    `AccelUnavailable` when KVM is known not to work. `HYPERLAB_ACCEL=kvm|tcg|auto` in the
    environment replaces `auto` (for CI); an explicit `--accel kvm|tcg` wins over it.
    """
    env = os.environ if env is None else env
    detect = detect or detect_accel
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
    report = detect(store)
    if choice == "auto":
        return report
    if report.status == "works":
        return replace(report, source=source)
    if report.status == "untested":
        return AccelReport("kvm", "untested", f"KVM chosen with {source}, not tested (no test guest: lab image build tiny)",
                           source=source)
    raise AccelUnavailable(f"{source}: KVM does not work on this host: {report.why}; use --accel tcg")


def probe_tcg(store: ImageStore | None = None, timeout: float = TCG_TIMEOUT) -> ProbeResult:
    """Boot the test guest under software emulation: proves the guest and its marker work."""
    guest = find_test_guest(store)
    if guest is None:
        raise FileNotFoundError("no test guest in the image store; build one with: lab image build tiny")
    return run_probe("tcg", guest, timeout)


def leftover_probes(tag: str = PROBE_TAG) -> list[int]:
    """Pids of running processes whose command line carries `tag` (a leaked probe QEMU)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if tag.encode() in cmdline and int(proc.name) != os.getpid():
            found.append(int(proc.name))  # zombies too: an unreaped probe is a leak
    return found


__all__ = [
    "AccelReport",
    "AccelUnavailable",
    "ProbeGuest",
    "ProbeResult",
    "cache_key",
    "cpu_vendor",
    "detect_accel",
    "find_test_guest",
    "leftover_probes",
    "load_cached",
    "probe_tcg",
    "resolve_accel",
    "run_probe",
    "save_cached",
    "verdict",
]
