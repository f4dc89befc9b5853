"""chapter-2-linux on real guests: the README's lab, deployed, checked, solved and graded.

Six Debian guests under software emulation (about eleven minutes to deploy here), with four nested
tickers on the two hypervisors. The checker self-test covers all twelve steps: the domain join, the
networking half of seed 004 (router, NAT, Telnet, RDP on 35000, port forwards), and the
virtualization half (migration settings, three kinds of live migration, replica, failover), with the
replication interval shortened to 60 s by a lab variable.

The instance starts from the lab's prepared layers (`lab prepare`, with the same variable): the
start state (Samba provisioning, libvirt and the nested guests' images) is in them, and only the
lab's `personalize:` actions run, which give DC1 this instance's own Administrator password, krbtgt
and TLS keys and start the nested guests again. Everything below says what it said on a cold
instance in earlier runs (the statuses are those of the cold check).

Between the first check and `lab solve`, one step is solved and the whole instance is reset from its
`start` checkpoint (seconds, no boot): the checkers must then say exactly what they said cold, and
everything after runs on the restored instance. The check after `lab solve` is `lab grade` itself,
over a roster of two students: the solved instance and one that was never deployed. A second deployed instance was measured here: the two
`lab up`s at once took 34 minutes beside the rest of the suite, which would take the suite past its
hour; chapter-1's test grades two deployed instances, one fresh and one solved.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hyperlab.grading.document import RunDocument
from hyperlab.grading.runner import run_checks
from hyperlab.grading.selftest import assert_solved, assert_unsolved
from hyperlab.core.load import load_lab
from hyperlab.core.plan import instance_folder
from hyperlab.host.facts import host_facts
from tests.integration.conftest import inventory, run_lab

pytestmark = pytest.mark.vm
LAB = "labs/chapter-2-linux/lab.yaml"
INSTANCE, ABSENT = "c2ci", "c2never"
INTERVAL = 60


@pytest.fixture(scope="module")
def deployed(conn: object, lab_env: dict[str, str]) -> Iterator[dict[str, str]]:
    try:
        variable = f"replication_interval_seconds={INTERVAL}"
        prepared = run_lab(lab_env, "prepare", LAB, "--var", variable, timeout=3600)
        up = run_lab(lab_env, "up", LAB, "--instance", INSTANCE, "--var", variable)
        assert f"starting from the prepared layers {prepared.stdout.strip()}" in up.stderr, up.stderr
        for node, script in (("DC1", "start/dc.sh"), ("SVR1", "start/hypervisor.sh"), ("SVR2", "start/hypervisor.sh")):
            assert f"{node}: start state: {script} already done" in up.stderr, up.stderr
        yield {**lab_env, "LAYERS": prepared.stdout.strip()}
    finally:
        down = run_lab(lab_env, "down", LAB, "--instance", INSTANCE, check=False)
        left = {kind: {n for n in names if f".{INSTANCE}." in n or n.endswith(f".{INSTANCE}")}
                for kind, names in inventory(conn).items()}
        assert down.returncode == 0, down.stdout + down.stderr
        assert left == {kind: set() for kind in left}, left


def test_the_prepared_instance_has_its_own_secrets(deployed: dict[str, str]) -> None:
    """The directory in the shared layer was made with the template's password; this instance's
    Administrator and krbtgt passwords were set after the layer was made, and the instance's own
    password is the one the directory takes."""
    made = json.loads((Path(deployed["LAYERS"]) / "layer.json").read_text())["created"]
    made_at = datetime.fromisoformat(made)
    for account in ("Administrator", "krbtgt"):
        shown = run_lab(deployed, "exec", LAB, "DC1", "--instance", INSTANCE, "--", "samba-tool", "user", "show", account,
                        "--attributes=pwdLastSet").stdout
        ticks = int(re.search(r"^pwdLastSet: (\d+)$", shown, re.M).group(1))  # type: ignore[union-attr]
        set_at = datetime(1601, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ticks // 10)
        assert set_at > made_at, (account, set_at, made_at)
    password = json.loads((instance_folder(host_facts(), "chapter-2-linux", INSTANCE) / "secrets.json").read_text())["domain-admin"]
    check = run_lab(deployed, "exec", LAB, "DC1", "--instance", INSTANCE, "--stdin", "--", "sh", "-c",
                    "samba-tool user show Administrator -H ldap://127.0.0.1 -U Administrator --password=\"$(cat)\"",
                    input=password, check=False)
    assert check.returncode == 0 and "sAMAccountName: Administrator" in check.stdout, check.stdout + check.stderr


def test_checkers_fail_fresh_pass_solved_and_grade(deployed: dict[str, str], tmp_path: Path) -> None:
    loaded = load_lab(LAB)
    before = run_checks(loaded, INSTANCE, tmp_path / "before.json", key=deployed["HYPERLAB_GRADING_KEY"])
    assert_unsolved(before)
    statuses = {s.id: s.status for s in before.steps}
    assert statuses["nat"] == statuses["port-forwards"] == statuses["shared-nothing"] == statuses["failover"] == "BLOCKED"
    assert statuses["router-addressing"] == statuses["domain-join"] == "FAIL"

    # A student's work, then `lab reset` of the whole instance: from the start checkpoint, in one cut,
    # and the checkers see exactly what they saw on the cold instance
    run_lab(deployed, "solve", LAB, "--instance", INSTANCE, "--step", "domain-join")
    reset = run_lab(deployed, "reset", LAB, "--instance", INSTANCE)
    assert all(f"{name}: restored checkpoint start" in reset.stderr for name in loaded.topology.topology.nodes), reset.stderr
    restored = run_checks(loaded, INSTANCE, tmp_path / "restored.json", key=deployed["HYPERLAB_GRADING_KEY"])
    assert_unsolved(restored)
    assert {s.id: s.status for s in restored.steps} == statuses

    solved = run_lab(deployed, "solve", LAB, "--instance", INSTANCE, timeout=3600)
    assert "warning" not in solved.stderr, solved.stderr

    roster = tmp_path / "roster.csv"
    roster.write_text(f"student,instance\nKim Solved,{INSTANCE}\nPark Absent,{ABSENT}\n")
    out = tmp_path / "grades"
    run_lab(deployed, "grade", LAB, "--roster", str(roster), "-j", "2", "--out", str(out))
    assert_solved(RunDocument.from_json(json.loads((out / "evidence" / "Kim_Solved.json").read_text())))
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    steps = loaded.lab.steps
    assert {s.id: rows["Kim Solved"][s.id] for s in steps} == {s.id: str(s.points) for s in steps}
    assert (rows["Kim Solved"]["total"], rows["Kim Solved"]["max"], rows["Kim Solved"]["notes"]) == ("100", "100", "")
    # never deployed: ERROR in every cell, never a 0 an LMS would import as a grade
    assert {rows["Park Absent"][s.id] for s in steps} | {rows["Park Absent"]["total"]} == {"ERROR"}
    assert f"instance {ABSENT} is not deployed" in rows["Park Absent"]["notes"]
    # the JUnit XML: one suite per student, every step a test case, ERROR an error
    suites = {suite.get("name"): suite for suite in ET.parse(out / "junit.xml").getroot()}
    counts = {name: tuple(int(suite.get(k, "-1")) for k in ("tests", "failures", "skipped", "errors"))
              for name, suite in suites.items()}
    assert counts == {"Kim Solved": (12, 0, 0, 0), "Park Absent": (12, 0, 0, 12)}
    verified = run_lab(deployed, "grade", "--verify", str(out / "evidence" / "Kim_Solved.json"))
    assert verified.stdout.startswith("ok: "), verified.stdout
