"""The ticker kernel: the bytes shipped are the source assembled, QEMU's multiboot loader accepts
them, and the program counts on its console (booted for real, a few seconds under emulation)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from hyperlab.images import ticker
from hyperlab.images.ticker import KERNEL, START_LINE, uptimes

MAGIC = 0x1BADB002
BASE = 0x100000


def assemble(tmp: Path) -> bytes:
    for tool in ("as", "ld"):
        assert shutil.which(tool), f"{tool} is missing: install binutils (bash scripts/setup-host.sh)"
    return ticker.assemble(ticker.SOURCE.read_text(), tmp)


def test_shipped_kernel_is_the_assembled_source(tmp_path: Path) -> None:
    assert assemble(tmp_path) == KERNEL, "ticker.S changed: paste its assembled bytes into ticker.py KERNEL"


def test_multiboot_header_loads_the_whole_file_and_enters_inside_it() -> None:
    magic, flags, checksum, header, load, load_end, bss_end, entry = struct.unpack_from("<8I", KERNEL, 0)
    assert magic == MAGIC
    assert (magic + flags + checksum) & 0xFFFFFFFF == 0
    assert flags & (1 << 16), "a flat binary needs the address fields (a.out kludge)"
    assert header == load == BASE and load_end == bss_end == 0
    assert BASE + 32 <= entry < BASE + len(KERNEL)
    assert len(KERNEL) < 8192, "multiboot wants its header in the first 8 KiB; the program is far smaller"


def test_uptimes_reads_the_counts_in_order() -> None:
    console = f"junk\r\n{START_LINE}\r\nhyperlab-ticker: up 5 s\r\nhyperlab-ticker: up 10 s\r\n"
    assert uptimes(console) == [5, 10]
    assert uptimes("hyperlab-tiny: up 5 s boot=1") == []


@pytest.mark.vm
def test_ticker_boots_and_counts(tmp_path: Path) -> None:
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu, "qemu-system-x86_64 is missing: bash scripts/setup-host.sh"
    kernel = tmp_path / "ticker"
    kernel.write_bytes(KERNEL)
    console = tmp_path / "console.log"
    proc = subprocess.run(["timeout", "16", qemu, "-accel", "tcg", "-m", "16", "-display", "none", "-no-reboot",
                           "-nodefaults", "-serial", f"file:{console}", "-kernel", str(kernel)],
                          capture_output=True, text=True)
    assert proc.returncode == 124, f"QEMU stopped before the timeout: {proc.stderr.strip()[-300:]}"
    text = console.read_text(errors="replace")
    assert text.count(START_LINE) == 1, text[-500:]
    counts = uptimes(text)
    assert counts and counts == list(range(5, 5 * len(counts) + 1, 5)), text[-500:]
