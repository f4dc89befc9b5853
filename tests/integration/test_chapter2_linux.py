"""chapter-2-linux on real guests, on two instances: `lab up` both, `lab solve` one, and `lab grade`
over both (plus a student whose instance was never deployed).

Six Debian guests per instance under software emulation, with four nested tickers on the two
hypervisors. The checker self-test covers all twelve steps: the domain join, the networking half
of seed 004 (router, NAT, Telnet, RDP on 35000, port forwards), and the virtualization half
(migration settings, three kinds of live migration, replica, failover), with the replication
interval shortened to 60 s by a lab variable.

The fresh instance is the "before": every step of it must FAIL or be BLOCKED, graded after the other
instance was solved, which also proves that solving one student's lab changes nothing in another's.
"""

from __future__ import annotations

import csv
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperlab.grading.selftest import assert_solved, assert_unsolved
from hyperlab.load import load_lab
from tests.integration.conftest import inventory, run_lab, up_at_once

pytestmark = pytest.mark.vm
LAB = "labs/chapter-2-linux/lab.yaml"
SOLVED, FRESH, ABSENT = "c2ci", "c2fresh", "c2never"
INTERVAL = 60


def ours(conn: object) -> set[str]:
    return {n for names in inventory(conn).values() for n in names
            for instance in (SOLVED, FRESH) if f"chapter-2-linux.{instance}" in n}


@pytest.fixture(scope="module")
def deployed(conn: object, lab_env: dict[str, str]) -> Iterator[dict[str, str]]:
    assert not ours(conn), "chapter-2-linux instances are left over from an earlier run; `lab down` them first"
    started = time.monotonic()
    try:
        # twelve guests boot together here: each node gets twice the usual time to become ready
        up_at_once(lab_env, LAB, (SOLVED, FRESH), "--var", f"replication_interval_seconds={INTERVAL}", "--timeout", "1800")
        print(f"\nchapter-2-linux: lab up x2 {time.monotonic() - started:.0f}s")
        yield lab_env
    finally:
        downs = [run_lab(lab_env, "down", LAB, "--instance", name, check=False) for name in (SOLVED, FRESH)]
        for down in downs:
            assert down.returncode == 0, down.stdout + down.stderr
        assert not ours(conn), f"left in libvirt after lab down: {sorted(ours(conn))}"


def test_fresh_fails_solved_passes_and_the_gradebook_says_so(deployed: dict[str, str], tmp_path: Path) -> None:
    started = time.monotonic()
    solved = run_lab(deployed, "solve", LAB, "--instance", SOLVED, timeout=3600)
    assert "warning" not in solved.stderr, solved.stderr
    solving = time.monotonic()

    roster = tmp_path / "roster.csv"
    roster.write_text(f"student,instance\nKim Solved,{SOLVED}\nLee Fresh,{FRESH}\nPark Absent,{ABSENT}\n")
    out = tmp_path / "grades"
    run_lab(deployed, "grade", LAB, "--roster", str(roster), "-j", "3", "--out", str(out))
    print(f"chapter-2-linux: solve {solving - started:.0f}s, grade {time.monotonic() - solving:.0f}s")

    def evidence(slug: str) -> dict[str, Any]:
        return dict(json.loads((out / "evidence" / f"{slug}.json").read_text()))

    assert_solved(evidence("Kim_Solved"))
    fresh = evidence("Lee_Fresh")
    assert_unsolved(fresh)
    statuses = {s["id"]: s["status"] for s in fresh["steps"]}
    assert statuses["nat"] == statuses["port-forwards"] == statuses["shared-nothing"] == statuses["failover"] == "BLOCKED"
    assert statuses["router-addressing"] == statuses["domain-join"] == "FAIL"

    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    steps = {s.id: s.points for s in load_lab(LAB).lab.steps}
    assert {step: rows["Kim Solved"][step] for step in steps} == {step: str(points) for step, points in steps.items()}
    assert (rows["Kim Solved"]["total"], rows["Kim Solved"]["max"], rows["Kim Solved"]["notes"]) == ("100", "100", "")
    assert {rows["Lee Fresh"][step] for step in steps} | {rows["Lee Fresh"]["total"]} == {"0"}
    # never deployed: ERROR in every cell, never a 0 an LMS would import as a grade
    assert {rows["Park Absent"][step] for step in steps} | {rows["Park Absent"]["total"]} == {"ERROR"}
    assert f"instance {ABSENT} is not deployed" in rows["Park Absent"]["notes"]
    # the JUnit XML for the CI of an LMS: one suite per student, a FAIL a failure, BLOCKED skipped, ERROR an error
    suites = {suite.get("name"): suite for suite in ET.parse(out / "junit.xml").getroot()}
    counts = {name: tuple(int(suite.get(k, "-1")) for k in ("tests", "failures", "skipped", "errors"))
              for name, suite in suites.items()}
    blocked = sum(status == "BLOCKED" for status in statuses.values())
    assert counts == {"Kim Solved": (12, 0, 0, 0), "Lee Fresh": (12, 12 - blocked, blocked, 0), "Park Absent": (12, 0, 0, 12)}
    verified = run_lab(deployed, "grade", "--verify", str(out / "evidence" / "Kim_Solved.json"))
    assert verified.stdout.startswith("ok: "), verified.stdout

