"""Benchmark what an idle ticker (chapter-2-linux's nested guest) costs its host, by timer rate.

    python3 bench/ticker.py            # about a minute; needs as, ld and qemu-system-x86_64

Each variant is ticker.S assembled with another HZ and run under QEMU's software emulation for
SECONDS; the CPU time QEMU used is what one idle ticker takes from its host. Inside SVR1 that host
is itself emulated, so every CPU second here costs many there. Measured, never asserted. Results
replace the block between the TICKER markers in docs/performance.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from hyperlab.images import ticker
from performance_doc import record

SECONDS = 30
RATES = (100, 20)


def kernel(hz: int, work: Path) -> bytes:
    return ticker.assemble(re.sub(r"\.set HZ, \d+", f".set HZ, {hz}", ticker.SOURCE.read_text()), work)


def cpu_seconds(image: Path, console: Path) -> float:
    """User plus system CPU time of one QEMU running the ticker for SECONDS."""
    proc = subprocess.Popen(["timeout", str(SECONDS), "qemu-system-x86_64", "-accel", "tcg", "-m", "16", "-display", "none",
                             "-no-reboot", "-nodefaults", "-serial", f"file:{console}", "-kernel", str(image)])
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        rows = []
        for hz in RATES:
            console = work / f"console{hz}.log"
            code = kernel(hz, work)
            image = work / f"ticker{hz}.bin"
            image.write_bytes(code)
            used = cpu_seconds(image, console)
            counts = ticker.uptimes(console.read_text(errors="replace"))
            rows.append(f"| {hz} Hz{' (shipped)' if code == ticker.KERNEL else ''} | "
                        f"{100 * used / SECONDS:.1f}% | {counts[-1] if counts else 'none'} |")
    print(record("TICKER", [f"One idle ticker under QEMU TCG for {SECONDS} s, one level of emulation (`python3 bench/ticker.py`):",
                             "", "| timer rate | CPU of one host core | last count on the console |", "| --- | --- | --- |",
                             *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
