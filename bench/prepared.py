"""Benchmark prepared labs on chapter-2-linux: `lab up` cold vs from prepared layers (total, boot,
start state or personalize), what `lab prepare` costs once, and the layers' sizes against the
golden image and the overlays of a prepared instance.

    python3 bench/prepared.py       # about 15 minutes under software emulation

Measured, never asserted: the numbers depend on the host. Results replace the block between the
PREPARED markers in docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from hyperlab.core.layers import TEMPLATE_INSTANCE
from hyperlab.core.load import load_lab
from hyperlab.host.conn import connect
from hyperlab.images.layers import LayerStore
from hyperlab.images.registry import ensure_images
from hyperlab.images.store import ImageStore
from hyperlab.images.test_guest import resolve
from hyperlab.ops.deploy import down, up
from hyperlab.ops.prepare import choose, prepare
from hyperlab.ops.secrets import plan_for_up
from measure import Clock, timed
from performance_doc import record

ROOT = Path(__file__).resolve().parents[1]
LAB = "chapter-2-linux"


def overlay_bytes(the_plan) -> int:  # type: ignore[no-untyped-def]
    return sum(v.path.stat().st_blocks * 512 for n in the_plan.nodes for v in n.volumes if v.path.exists())


def phases(clock: Clock) -> tuple[float, float]:
    """(first start to last ready, last ready to the start checkpoint)."""
    return (clock.last("ready after") - clock.first("booting"),
            clock.first("saving checkpoint") - clock.last("ready after"))


def main() -> None:
    conn = connect()
    store = ImageStore()
    accel = resolve("auto", store)
    loaded = load_lab(LAB, ROOT)
    ensure_images(store, {"debian-12", "ticker"})
    cold_plan = plan_for_up(loaded, "bench-cold", accel.accel)
    warm_plan = plan_for_up(loaded, "bench-prepared", accel.accel)
    template = plan_for_up(loaded, TEMPLATE_INSTANCE, accel.accel)
    layer_store = LayerStore(store, cold_plan.pool_path.parent)
    for the_plan in (cold_plan, warm_plan, template):
        down(conn, the_plan)
    layer_store.prune(LAB)  # a prepare from nothing

    cold = Clock()
    cold_s = timed(lambda: up(conn, loaded, cold_plan, progress=cold))
    cold_overlays = overlay_bytes(cold_plan)
    down(conn, cold_plan)

    made = Clock()
    prepare_s = timed(lambda: prepare(conn, loaded, template, store, layer_store, {},
                                      bring_up=lambda p: up(conn, loaded, p, progress=made, checkpoint=False),
                                      take_down=lambda p: down(conn, p), progress=made))
    layers, why = choose(loaded, warm_plan, store, layer_store, {})
    assert layers is not None, why
    warm = Clock()
    warm_s = timed(lambda: up(conn, loaded, warm_plan, progress=warm, layers=layers))
    warm_overlays = overlay_bytes(warm_plan)
    down(conn, warm_plan)

    nodes = len(cold_plan.nodes)
    cold_boot, cold_start = phases(cold)
    warm_boot, warm_start = phases(warm)
    layer_bytes = sum(v.bytes for v in layers.record.volumes)
    golden = store.path("debian-12").stat().st_blocks * 512
    rows = [
        ("host", f"{platform.node()}: {os.cpu_count()} cores, {accel.accel} ({accel.reason})"),
        (f"`lab up {LAB}` cold, {nodes} nodes, total", f"{cold_s:.1f} s"),
        ("  of which guests booting (first start to last ready)", f"{cold_boot:.1f} s"),
        ("  of which first boot, guest images and start state", f"{cold_start:.1f} s"),
        (f"`lab prepare {LAB}` (once per host and inputs)", f"{prepare_s:.1f} s"),
        (f"`lab up {LAB}` from the prepared layers, total", f"{warm_s:.1f} s"),
        ("  of which guests booting (first start to last ready)", f"{warm_boot:.1f} s"),
        ("  of which skipped markers and `personalize:`", f"{warm_start:.1f} s"),
        ("the debian-12 golden image, on disk", f"{golden / 2**20:.0f} MiB"),
        (f"the {len(layers.record.volumes)} layers of the set", f"{layer_bytes / 2**20:.0f} MiB"),
        (f"a cold instance's {nodes} overlays with `start`", f"{cold_overlays / 2**20:.0f} MiB"),
        (f"a prepared instance's {nodes} overlays with `start`", f"{warm_overlays / 2**20:.0f} MiB"),
    ]
    table = "| measure | result |\n| --- | --- |\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    record("PREPARED", [f"Measured {stamp} by `python3 bench/prepared.py`.", "", table.rstrip("\n")],
           heading="## Prepared labs")
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
