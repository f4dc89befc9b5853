"""Benchmark checkpoints on chapter-2-linux: `lab reset NODE` clean vs from the `start` checkpoint,
`lab reset --to STEP` (made, then kept) vs reset + solve, and what checkpoints add to overlays.

    python3 bench/checkpoints.py       # about 25 minutes under software emulation

Measured, never asserted: the numbers depend on the host. Results replace the block between the
CHECKPOINTS markers in docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from hyperlab.core.load import load_lab
from hyperlab.host.conn import connect
from hyperlab.images.registry import ensure_images
from hyperlab.images.store import ImageStore
from hyperlab.images.test_guest import resolve
from hyperlab.ops.checkpoints import reset_to
from hyperlab.ops.deploy import down, reset, up
from hyperlab.ops.secrets import plan_for_up
from hyperlab.ops.solve import solve
from measure import Clock, timed
from performance_doc import record

ROOT = Path(__file__).resolve().parents[1]
LAB = "chapter-2-linux"
NODE = "ROUTER"  # a plain node: no start state of its own, the reset is the whole cost
STEP = "domain-join"  # one step whose solution touches three nodes


def overlay_bytes(the_plan) -> int:  # type: ignore[no-untyped-def]
    return sum(v.path.stat().st_blocks * 512 for n in the_plan.nodes for v in n.volumes if v.path.exists())


def main() -> None:
    conn = connect()
    store = ImageStore()
    accel = resolve("auto", store)
    loaded = load_lab(LAB, ROOT)
    the_plan = plan_for_up(loaded, "bench", accel.accel)
    ensure_images(store, {"debian-12", "ticker"})
    down(conn, the_plan)

    clock = Clock()
    up_s = timed(lambda: up(conn, loaded, the_plan, progress=clock))
    booting = clock.last("ready after") - clock.first("booting")
    start_state = clock.first("saving checkpoint") - clock.last("ready after")
    saving = clock.last("checkpoint start saved") - clock.first("saving checkpoint")
    golden = store.path("debian-12").stat().st_blocks * 512
    with_start = overlay_bytes(the_plan)

    restore_s = timed(lambda: reset(conn, loaded, the_plan, [NODE]))
    clean_s = timed(lambda: reset(conn, loaded, the_plan, [NODE], clean=True))
    progress = Clock()
    by_solve_s = timed(lambda: (reset(conn, loaded, the_plan, [n.name for n in the_plan.nodes]),
                                solve(conn, loaded, the_plan, [STEP])))
    made_s = timed(lambda: reset_to(conn, loaded, the_plan, STEP, lambda steps: solve(conn, loaded, the_plan, steps),
                                    progress))
    kept_s = timed(lambda: reset_to(conn, loaded, the_plan, STEP, lambda steps: solve(conn, loaded, the_plan, steps)))
    with_step = overlay_bytes(the_plan)
    down(conn, the_plan)

    nodes = len(the_plan.nodes)
    rows = [
        ("host", f"{platform.node()}: {os.cpu_count()} cores, {accel.accel} ({accel.reason})"),
        (f"`lab up {LAB}`, {nodes} nodes, total", f"{up_s:.1f} s"),
        ("  of which guests booting (first start to last ready)", f"{booting:.1f} s"),
        ("  of which start state and nested guests", f"{start_state:.1f} s"),
        ("  of which saving the `start` checkpoints (one cut)", f"{saving:.1f} s"),
        (f"`lab reset {NODE}` from the `start` checkpoint", f"{restore_s:.1f} s"),
        (f"`lab reset {NODE} --clean` (overlay, boot, ready, new checkpoint)", f"{clean_s:.1f} s"),
        (f"the whole instance reset, then `lab solve --step {STEP}`", f"{by_solve_s:.1f} s"),
        (f"`lab reset --to {STEP}`, the first time (restore, solve, save)", f"{made_s:.1f} s"),
        (f"`lab reset --to {STEP}` again (restore `step-{STEP}`)", f"{kept_s:.1f} s"),
        ("the debian-12 golden image, on disk", f"{golden / 2**20:.0f} MiB"),
        (f"the {nodes} overlays with `start`", f"{with_start / 2**20:.0f} MiB"),
        (f"the {nodes} overlays with `start` and `step-{STEP}`", f"{with_step / 2**20:.0f} MiB"),
    ]
    table = "| measure | result |\n| --- | --- |\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    record("CHECKPOINTS", [f"Measured {stamp} by `python3 bench/checkpoints.py`.", "", table.rstrip("\n")],
           heading="## Checkpoints")
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
