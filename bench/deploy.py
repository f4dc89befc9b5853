"""Benchmark `lab up`, overlays and `lab reset`; write the results into docs/performance.md.

    python3 bench/deploy.py            # about 10 minutes under software emulation

Measured, never asserted: the numbers depend on the host. Results replace the block between
the BENCH markers in docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hyperlab.images.test_guest import resolve
from hyperlab.images.registry import ensure_images
from hyperlab.ops.deploy import down, reset, up
from hyperlab.ops.secrets import plan_for_up
from hyperlab.images.store import ImageStore
from hyperlab.host.conn import connect
from hyperlab.core.load import load_lab
from measure import Clock, timed
from performance_doc import record

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    conn = connect()
    store = ImageStore()
    accel = resolve("auto", store)
    loaded = load_lab(ROOT / "bench" / "labs" / "six", ROOT)
    the_plan = plan_for_up(loaded, "bench", accel.accel)
    ensure_images(store, {"debian-12"})
    down(conn, the_plan)

    # 1. overlay against a full copy of the golden image
    golden = store.path("debian-12")
    scratch = Path("/var/tmp/hyperlab-bench")
    scratch.mkdir(exist_ok=True)
    overlay_s = timed(lambda: subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(golden), "-F",
                                              "qcow2", str(scratch / "overlay.qcow2")], check=True))
    overlay_bytes = (scratch / "overlay.qcow2").stat().st_size
    copy_s = timed(lambda: shutil.copyfile(golden, scratch / "copy.qcow2"))
    copy_bytes = (scratch / "copy.qcow2").stat().st_size
    shutil.rmtree(scratch)

    # 2. lab up of six nodes: the framework's share is everything but waiting for guests to boot
    clock = Clock()
    total = timed(lambda: up(conn, loaded, the_plan, progress=clock))
    boot_window = clock.last("ready after") - clock.first("booting")
    overhead = total - boot_window

    # 3. the slowest node alone, then 4. lab reset of one node
    ready = {node: float(phase.split()[2].rstrip("s")) for _, node, phase in clock.events if phase.startswith("ready after")}
    slowest = max(ready, key=ready.__getitem__)
    reset_clock = Clock()
    reset_s = timed(lambda: reset(conn, loaded, the_plan, [slowest], progress=reset_clock))
    alone = next(float(p.split()[2].rstrip("s")) for _, n, p in reset_clock.events if p.startswith("ready after"))
    down(conn, the_plan)

    rows = [
        ("host", f"{platform.node()}: {os.cpu_count()} cores, {accel.accel} ({accel.reason})"),
        ("`lab up`, six nodes, total", f"{total:.1f} s"),
        ("  of which guests booting (first start to last ready)", f"{boot_window:.1f} s"),
        ("  framework overhead (everything else)", f"{overhead:.1f} s"),
        ("slowest node alone (after reset)", f"{slowest}: ready in {alone:.1f} s"),
        ("whole lab ready / slowest node alone", f"{boot_window / alone:.2f}"),
        ("`lab reset` of one node (overlay, boot, ready)", f"{reset_s:.1f} s"),
        ("overlay creation", f"{overlay_s * 1000:.0f} ms, {overlay_bytes / 1024:.0f} KiB"),
        ("full copy of the golden image", f"{copy_s:.1f} s, {copy_bytes / 2**20:.0f} MiB"),
    ]
    table = "| measure | result |\n| --- | --- |\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    record("BENCH", [f"Measured {stamp} by `python3 bench/deploy.py`.", "", table.rstrip("\n")])
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
