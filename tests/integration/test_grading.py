"""Checking and grading real guests: the solo lab (tests/data/labs/solo) in three instances.

- solved: the checker self-test runs on it (every step FAIL/BLOCKED, then `lab solve`, every step PASS);
- fresh:  left as `lab up` made it;
- off:    deployed, then shut down.
`lab grade` over the three must give full marks, zero, and ERROR; the evidence must verify and
must not survive tampering. The three boot at once to keep the wall time near one boot.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlab.core.load import load_lab
from hyperlab.grading.selftest import prove_checkers
from hyperlab.host.conn import lookup_domain
from hyperlab.host.facts import host_plan
from hyperlab.ops.solve import solve
from tests.integration.conftest import ROOT, inventory, run_lab

pytestmark = pytest.mark.vm
LAB = "tests/data/labs/solo/lab.yaml"
INSTANCES = ("g-solved", "g-fresh", "g-off")


@pytest.fixture(scope="module")
def deployed(conn: object, lab_env: dict[str, str]) -> Iterator[dict[str, str]]:
    ups = [subprocess.Popen([sys.executable, "-m", "hyperlab", "up", LAB, "--instance", name], cwd=ROOT, env=lab_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in INSTANCES]
    try:
        for name, proc in zip(INSTANCES, ups):
            output, _ = proc.communicate(timeout=1200)
            assert proc.returncode == 0, f"lab up {name}:\n{output}"
        off = lookup_domain(conn, "hl.solo.g-off.S1")  # type: ignore[arg-type]
        assert off is not None
        off.destroy()
        yield lab_env
    finally:
        for name in INSTANCES:
            run_lab(lab_env, "down", LAB, "--instance", name, check=False)
        # only this module's objects are compared: other labs may come and go meanwhile
        left = {kind: {n for n in names if "solo.g-" in n} for kind, names in inventory(conn).items()}
        assert left == {kind: set() for kind in left}, left


def check_json(env: dict[str, str], instance: str, *extra: str) -> dict:
    result = run_lab(env, "check", LAB, "--instance", instance, "--json", *extra, check=False)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return json.loads(result.stdout)


def statuses(document: dict) -> dict[str, str]:
    return {s["id"]: s["status"] for s in document["steps"]}


def test_checkers_fail_when_fresh_and_pass_after_lab_solve(conn: object, deployed: dict[str, str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLAB_GRADING_KEY", deployed["HYPERLAB_GRADING_KEY"])
    loaded = load_lab(LAB)
    plan = host_plan(loaded, "g-solved")
    before, after = prove_checkers(loaded, "g-solved", lambda steps: solve(conn, loaded, plan, steps),  # type: ignore[arg-type]
                                   tmp_path)
    assert statuses(before.to_json()) == {"account": "FAIL", "web": "BLOCKED", "motd": "FAIL"}
    assert "S1 has no user kosa" in before.steps[0].observed
    assert before.steps[0].hint_in("en").startswith("useradd")
    assert after.score == after.max == 9
    # the evidence names what was run and seen, with the domain it was taken from
    web = next(s for s in after.steps if s.id == "web")
    kinds = {e["kind"] for c in web.checks for e in c.evidence}
    assert kinds == {"command", "probe"}
    assert set(after.domains) == {"S1"}


def test_pytest_checkers_gives_the_same_result_as_lab_check(deployed: dict[str, str], tmp_path: Path) -> None:
    evidence = tmp_path / "pytest.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/data/checkers/solo", "--instance", "g-fresh",
                           "--evidence", str(evidence), "-p", "no:cacheprovider", "-q"], cwd=ROOT, env=deployed,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"^FAIL +0/2 +account: Create the kosa account$", proc.stdout, re.M), proc.stdout
    from_pytest = json.loads(evidence.read_text())
    from_lab = check_json(deployed, "g-fresh")
    assert [(s["id"], s["status"], s["score"]) for s in from_pytest["steps"]] == \
           [(s["id"], s["status"], s["score"]) for s in from_lab["steps"]]


def test_a_shut_down_lab_is_an_error_not_a_fail(deployed: dict[str, str]) -> None:
    document = check_json(deployed, "g-off")
    assert set(statuses(document).values()) == {"ERROR"} or statuses(document) == {
        "account": "ERROR", "web": "BLOCKED", "motd": "ERROR"}
    assert "S1 is not running" in document["steps"][0]["observed"]
    assert "not the student's fault" in document["steps"][0]["observed"]


def test_grade_writes_full_zero_and_error(deployed: dict[str, str], tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("student,instance\nSolved Student,g-solved\nFresh Student,g-fresh\nOff Student,g-off\n")
    out = tmp_path / "grades"
    result = run_lab(deployed, "grade", LAB, "--roster", str(roster), "-j", "3", "--out", str(out))
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert (rows["Solved Student"]["total"], rows["Solved Student"]["max"]) == ("9", "9")
    assert rows["Fresh Student"]["total"] == "0" and rows["Fresh Student"]["web"] == "0"
    assert rows["Off Student"]["total"] == "ERROR" and rows["Off Student"]["account"] == "ERROR"
    assert "S1 is not running" in rows["Off Student"]["notes"]
    assert "Off Student: ERROR/9" in result.stderr
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot()}
    assert suites["Off Student"].get("errors") != "0" and suites["Fresh Student"].get("failures") == "2"
    assert "Solved Student" in (out / "report.html").read_text()

    solved = out / "evidence" / "Solved_Student.json"
    verified = run_lab(deployed, "grade", "--verify", str(solved))
    assert "signature ok" in verified.stdout and "1 UUIDs match" in verified.stdout
    tampered = tmp_path / "tampered.json"
    document = json.loads((out / "evidence" / "Fresh_Student.json").read_text())
    document["score"] = 9
    tampered.write_text(json.dumps(document))
    refused = run_lab(deployed, "grade", "--verify", str(tampered), check=False)
    assert refused.returncode == 1 and "changed after it was signed" in refused.stderr
    # evidence taken from other domains than the ones deployed now (the lab was redeployed since,
    # or the file comes from another host): g-off gets a new domain with a new UUID, same name
    off_evidence = out / "evidence" / "Off_Student.json"
    redefine_with_new_uuid("hl.solo.g-off.S1")
    moved = run_lab(deployed, "grade", "--verify", str(off_evidence), check=False)
    assert moved.returncode == 1 and "domain UUIDs differ from the deployed lab: S1: file" in moved.stderr


def redefine_with_new_uuid(name: str) -> None:
    """What a redeploy does to a node: removed as `lab down` removes it (its checkpoints with it),
    defined again from the same XML, which gets a new UUID."""
    from hyperlab.host.apply import remove_domain
    from hyperlab.host.conn import connect

    conn = connect()
    try:
        domain = lookup_domain(conn, name)
        assert domain is not None and not domain.isActive()
        xml = re.sub(r"<uuid>[^<]*</uuid>", "", domain.XMLDesc(0))
        remove_domain(domain)
        conn.defineXML(xml)
    finally:
        conn.close()


def test_partial_credit_for_a_half_done_service(deployed: dict[str, str]) -> None:
    """The service answers, but runs as root: two of the web step's three checks pass (4 of 6 points)."""
    run_lab(deployed, "solve", LAB, "--instance", "g-fresh", "--step", "account")
    run_lab(deployed, "exec", LAB, "S1", "--instance", "g-fresh", "--", "sh", "-c",
        "mkdir -p /srv/hello && echo 'hello from S1' > /srv/hello/index.html && "
        "systemd-run --unit hello-web -p WorkingDirectory=/srv/hello /usr/bin/python3 -m http.server 8080")
    document = check_json(deployed, "g-fresh", "--step", "web")
    web = next(s for s in document["steps"] if s["id"] == "web")
    assert (web["status"], web["score"]) == ("FAIL", 4.0)
    assert "hello-web.service runs as root, expected kosa" in web["observed"]
    assert [s["id"] for s in document["steps"]] == ["account", "web"]
