"""Benchmark a class over several hosts: `lab class up` of six students on three hosts against one
student on one host, `lab grade` of the class against one student, and placing 1,000 students on
100 hosts (pure).

The hosts are network namespaces on this machine, each with its own sshd and libvirtd
(tests/nshosts.py), reached over SSH as real hosts are; they share this machine's two cores, so a
class of six boots six guests on two cores. The lab is tests/data/labs/solo (one 320 MiB Debian
guest per student).

    python3 bench/class_hosts.py      # about 10 minutes under software emulation

Measured, never asserted. Results replace the block between the CLASS markers in
docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperlab.core.load import load_lab  # noqa: E402
from hyperlab.core.needs import GiB, lab_needs  # noqa: E402
from hyperlab.core.placement import Demand, HostOffer, place  # noqa: E402
from hyperlab.images.registry import ensure_images  # noqa: E402
from hyperlab.images.store import ImageStore  # noqa: E402
from performance_doc import record  # noqa: E402
from tests.nshosts import Fleet  # noqa: E402

LAB = "tests/data/labs/solo/lab.yaml"
STUDENTS = ("kim", "lee", "park", "choi", "jung", "kang")
FACTS = "memory: 8GiB, cpus: 2, disk: 20GiB, reserve: 1GiB"


def cpu_seconds() -> float:
    """CPU time the whole machine has spent busy so far (every host's processes and guests included)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def lab(*args: str, cpu: list[float] | None = None) -> float:
    """`lab ARGS` from the checkout; its wall time (and the machine's CPU seconds meanwhile, into
    `cpu`). A failure stops the benchmark with its output."""
    start, busy = time.monotonic(), cpu_seconds()
    done = subprocess.run([sys.executable, "-m", "hyperlab", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HYPERLAB_ACCEL": "tcg"})
    if done.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    if cpu is not None:
        cpu.append(cpu_seconds() - busy)
    return time.monotonic() - start


def roster(folder: Path, name: str, rows: dict[str, str]) -> Path:
    path = folder / name
    path.write_text("student,instance,host\n" + "".join(f"{s},{s},{h}\n" for s, h in rows.items()))
    return path


def placement_seconds() -> tuple[float, int]:
    hosts = [HostOffer(f"hv{i:03d}", (32 + i % 5 * 16) * GiB, 8 + i % 3 * 8, 1024 * GiB, 4 * GiB) for i in range(100)]
    demand = Demand.of(lab_needs(load_lab("chapter-2-linux", ROOT)))
    students: list[tuple[str, str | None]] = [(f"s{i:04d}", None) for i in range(1000)]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        placed = place(hosts, demand, students)
        best = min(best, time.perf_counter() - start)
    return best, sum(p.host is not None for p in placed)


def main() -> None:
    ensure_images(ImageStore(), {"debian-12"})
    fleet = Fleet(Path(f"/var/tmp/hyperlab-bench-class-{time.time_ns()}"), ["hv1", "hv2", "hv3"])
    try:
        fleet.up()
        hosts = str(fleet.hosts_yaml({name: FACTS for name in fleet.hosts}))
        spread = {s: f"hv{i % 3 + 1}" for i, s in enumerate(STUDENTS)}
        whole = roster(fleet.folder, "class.csv", spread)
        one = roster(fleet.folder, "one.csv", {"kim": "hv1"})
        pair = roster(fleet.folder, "pair.csv", {s: h for s, h in spread.items() if h == "hv1"})
        warm = lab("class", "up", LAB, "--roster", str(whole), "--hosts", hosts, "--accel", "tcg")  # images copied
        lab("class", "down", LAB, "--roster", str(whole), "--hosts", hosts)
        single_up = lab("class", "up", LAB, "--roster", str(one), "--hosts", hosts, "--accel", "tcg")
        single_grade = lab("grade", LAB, "--roster", str(one), "--hosts", hosts, "--out", str(fleet.folder / "g1"))
        lab("class", "down", LAB, "--roster", str(one), "--hosts", hosts)
        class_up = lab("class", "up", LAB, "--roster", str(whole), "--hosts", hosts, "--accel", "tcg")
        time.sleep(30)  # the guests settle after their boots
        cpu: list[float] = []
        alone = lab("grade", LAB, "--roster", str(one), "--hosts", hosts, "--out", str(fleet.folder / "g1b"), cpu=cpu)
        hv1 = lab("grade", LAB, "--roster", str(pair), "--hosts", hosts, "--out", str(fleet.folder / "g2"), cpu=cpu)
        class_grade = lab("grade", LAB, "--roster", str(whole), "--hosts", hosts, "--out", str(fleet.folder / "g6"),
                          cpu=cpu)
        lab("class", "down", LAB, "--roster", str(whole), "--hosts", hosts)
    finally:
        fleet.down()
    placing, placed = placement_seconds()
    n = len(STUDENTS)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python3 bench/class_hosts.py` "
        f"({platform.node()}, {os.cpu_count()} cores, software emulation; three hosts as network namespaces of this "
        "one machine, sharing its cores).",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| first `lab class up` of {n} students (the lab sent and debian-12 copied to each host, then the boots) | {warm:.1f} s |",
        f"| `lab class up`, one student on one host | {single_up:.1f} s |",
        f"| `lab class up`, {n} students on three hosts | {class_up:.1f} s |",
        f"| class / one student (`lab class up`) | {class_up / single_up:.2f} |",
        f"| `lab grade`, one student (alone on the machine / beside the class's {n} guests) | {single_grade:.1f} s / "
        f"{alone:.1f} s |",
        f"| `lab grade`, hv1's {n // 3} students (one host's share of the class) | {hv1:.1f} s |",
        f"| `lab grade`, {n} students on three hosts | {class_grade:.1f} s |",
        f"| class / one student (`lab grade`, both beside the class's guests; goal at most 2) | {class_grade / alone:.2f} |",
        f"| one host's share / one student (what separate hosts, each with its own cores, would show) | {hv1 / alone:.2f} |",
        f"| busy CPU seconds of the whole machine meanwhile (the guests' own included): one student / one host's "
        "share / the class | "
        f"{cpu[0]:.1f} / {cpu[1]:.1f} / {cpu[2]:.1f} (two cores: the class's wall time is at least {cpu[2] / 2:.1f} s) |",
        f"| placing 1,000 students of chapter-2-linux on 100 hosts (pure, best of 5; goal under 1 s) | "
        f"{placing * 1000:.0f} ms ({placed} placed) |",
    ]
    print(record("CLASS", lines, "## A class over several hosts"))


if __name__ == "__main__":
    main()
