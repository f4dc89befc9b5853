"""Benchmark reading Windows install media: `inspect_windows_iso` (pycdlib) on ISOs laid out as
Microsoft's (every file on the UDF side only), with more and more files.

    python3 bench/isofs.py             # a few seconds; needs genisoimage

A Windows Server ISO holds about 1,000 entries; `lab image build` reads its tree and the image
list at the end of sources/install.wim once per build. Measured, never asserted. Results replace
the ISOFS block in docs/performance.md.
"""

from __future__ import annotations

import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hyperlab.images.isofs import inspect_windows_iso
from performance_doc import record

SIZES = (10, 1000, 5000)
RUNS = 5


def wim() -> bytes:
    """A WIM header whose XML resource lists one image (what inspect_windows_iso reads)."""
    xml = "\ufeff<WIM><IMAGE INDEX=\"1\"><NAME>Windows Server 2022 SERVERSTANDARD</NAME></IMAGE></WIM>".encode("utf-16-le")
    header = bytearray(208)
    header[:8] = b"MSWIM\x00\x00\x00"
    header[72:79] = len(xml).to_bytes(7, "little")
    struct.pack_into("<QQ", header, 80, 208, len(xml))
    return bytes(header) + xml


def media(work: Path, entries: int) -> Path:
    root = work / f"media{entries}"
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "install.wim").write_bytes(wim())
    for i in range(entries):
        folder = root / "sources" / f"d{i // 100}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.dll").write_bytes(b"x")
    iso = work / f"media{entries}.iso"
    subprocess.run(["genisoimage", "-quiet", "-udf", "-o", str(iso), "-hide", "*", "-hide", "sources", str(root)], check=True)
    return iso


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for entries in SIZES:
            iso = media(Path(scratch), entries)
            times = []
            for _ in range(RUNS):
                start = time.perf_counter()
                found = inspect_windows_iso(iso)
                times.append(time.perf_counter() - start)
            assert found.filesystem == "udf"
            rows.append(f"| {entries} | {1000 * statistics.median(times):.1f} ms |")
    print(record("ISOFS", [f"`inspect_windows_iso` on UDF-only media (median of {RUNS}, `python3 bench/isofs.py`):", "",
                            "| files on the medium | tree and image list read in |", "| --- | --- |", *rows],
                 heading="### Reading Windows install media"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
