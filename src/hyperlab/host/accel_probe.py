"""One boot of the test guest under QEMU, with a hard timeout: how `hyperlab.host.accel` tells a
working KVM from one that hangs or aborts. QEMU runs in its own process group, killed and reaped
before `run_probe` returns, whatever happened; `leftover_probes` finds any that escaped.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from hyperlab.core.plan import Accel

QEMU = "qemu-system-x86_64"
PROBE_TAG = "hyperlab-accel-probe"  # in the QEMU command line (-name), to find a leaked probe
PROBE_MEMORY_MIB = 128
DEFAULT_MARKER = "Run /init as init process"  # printed by any Linux kernel as it starts userspace

_ANSI = re.compile(rb"\x1b(\[[0-9;?]*[A-Za-z]|[@-Z\\-_])")
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]|Linux version")


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
    qemu = qemu or shutil.which(QEMU) or QEMU
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
