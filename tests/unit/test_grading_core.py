"""The pure parts of grading: folding checks into steps, eventually, evidence signing, roster, gradebook."""

from __future__ import annotations

import csv
import io
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hyperlab.core.errors import LabError
from hyperlab.grading import eventually
from hyperlab.grading import evidence
from hyperlab.grading.gradebook import grades_csv, junit_xml, report_html
from hyperlab.grading.document import RunDocument
from hyperlab.grading.outcome import NO_CHECKER, CheckResult, Status, fold
from hyperlab.core.steps import closure, order
from hyperlab.core.roster import read_roster
from hyperlab.core.load import load_lab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def solo():
    return load_lab("solo", ROOT / "tests" / "data").lab


def check(step: str, status: Status, weight: float = 1, message: str = "") -> CheckResult:
    return CheckResult(f"t::{step}-{status}", f"check {status}", step, weight, status, message)


# ------------------------------------------------------------------------------ fold


def test_partial_credit_splits_points_by_weight(solo) -> None:
    steps = {s.id: s for s in fold(solo, [check("account", Status.PASS), check("web", Status.PASS, 2),
                                          check("web", Status.FAIL, 1, "runs as root"), check("motd", Status.FAIL)])}
    assert (steps["web"].status, steps["web"].score) == (Status.FAIL, 4.0)
    assert steps["web"].observed == "runs as root"
    assert (steps["account"].status, steps["account"].score) == (Status.PASS, 2)
    assert steps["motd"].score == 0


def test_error_outranks_blocked_outranks_fail(solo) -> None:
    web = [check("web", Status.FAIL), check("web", Status.BLOCKED)]
    assert fold(solo, web, {"web"})[0].status is Status.BLOCKED
    assert fold(solo, [*web, check("web", Status.ERROR)], {"web"})[0].status is Status.ERROR


def test_a_step_without_checkers_is_an_error_not_a_zero(solo) -> None:
    step = fold(solo, [], {"motd"})[0]
    assert (step.status, step.observed) == (Status.ERROR, NO_CHECKER)


def test_order_puts_requirements_first_and_closure_follows_them(solo) -> None:
    ranks = order(solo)
    assert ranks["account"] < ranks["web"]
    assert closure(solo, {"web"}) == {"web", "account"}


def test_check_results_survive_json(solo) -> None:
    original = CheckResult("a::b", "name", "web", 2.5, Status.ERROR, "why", 1.25, [{"kind": "command"}])
    assert CheckResult.from_json(json.loads(json.dumps(original.to_json()))) == original


# ------------------------------------------------------------------------ eventually


def test_eventually_returns_the_first_good_value() -> None:
    values = iter([0, 0, 7])
    assert eventually(lambda: next(values), timeout=5, every=0.01) == 7


def test_eventually_counts_assertions_as_not_yet_and_reports_the_last_value() -> None:
    calls = []

    def state() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise AssertionError("not replicated yet")
        return "Warning"

    started = time.monotonic()
    with pytest.raises(AssertionError) as info:
        eventually(state, until=lambda v: v == "Normal", timeout=0.3, every=0.05, what="replication health")
    assert time.monotonic() - started < 2
    assert "replication health not reached after 0.3s" in str(info.value)
    assert "last value seen: 'Warning'" in str(info.value)


def test_eventually_does_not_wait_out_unreachable_nodes() -> None:
    from hyperlab.guest.base import ChannelError

    def down() -> None:
        raise ChannelError("cannot reach DC1")

    with pytest.raises(ChannelError):
        eventually(down, timeout=30, every=0.01)


# -------------------------------------------------------------------------- evidence


def test_signature_binds_the_domain_uuids(tmp_path: Path) -> None:
    key = evidence.load_key(tmp_path / "k", create=True)
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o600"
    doc = evidence.sign(RunDocument(lab="solo", instance="kim", score=9, max=9, steps=[],
                                    domains={"S1": "1111"}, finished="now"), key).to_json()
    assert evidence.verify(doc, key, lambda _: {"S1": "1111"}).ok
    moved = evidence.verify(doc, key, lambda _: {"S1": "2222"})
    assert not moved.ok and "S1: file 1111, deployed 2222" in moved.lines[-1]
    other = evidence.verify(doc, evidence.load_key(tmp_path / "other", create=True), lambda _: None)
    assert not other.ok and "signed with another key" in other.lines[0]
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    assert not evidence.verify(unsigned, key, lambda _: None).ok


def test_a_missing_key_is_not_made_when_verifying(tmp_path: Path) -> None:
    with pytest.raises(evidence.EvidenceError, match="no grading key"):
        evidence.load_key(tmp_path / "none", create=False)
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------- roster


def test_roster_reads_defaults_comments_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("\ufeffstudent,instance,uri,channel\n# a comment\nKim Minji,kim,,\nLee,lee,qemu+ssh://h/system,ssh\n",
                    encoding="utf-8")
    entries = read_roster(path)
    assert [(e.student, e.instance, e.uri, e.channel) for e in entries] == [
        ("Kim Minji", "kim", "qemu:///system", None), ("Lee", "lee", "qemu+ssh://h/system", "ssh")]
    assert entries[0].slug == "Kim_Minji"


@pytest.mark.parametrize("text, message", [
    ("name,instance\nkim,kim\n", "1:1: the header has no 'student' column"),
    ("student,instance\nkim,Kim!\n", "2:1: instance of kim:"),
    ("student,instance,channel\nkim,kim,telnet\n", "2:1: channel 'telnet'"),
    ("student,instance\nkim,kim\nlee,kim\n", "3:1: instance kim is already graded for line 2"),
    ("student,instance\n", "1:1: the roster names no students"),
    ("student,instance\nkim\0,kim\n", "2:4: a control character (\\x00) in the roster; remove it"),
    ('student,instance\n"kim\nlee",lee\n', "2:1: not a CSV line (unexpected end of data); a quoted cell must end on its line"),
    ("student,instance\nKim Minji,kim\nKim_Minji,minji\n", "3:1: 'Kim_Minji' and the student of line 2 get the same file name (Kim_Minji.json)"),
    ("student,instance\nKim\u00a0Minji,kim\nLee\u202eilJ,lee\n", "3:4: a control character (\\u202e) in the roster; remove it"),
    ("student;instance\nkim;kim\n", "1:1: the columns are separated by ';'; save the roster as CSV"),
    ("student\tinstance\nkim\tkim\n", "1:1: the columns are separated by '\\t'"),
    ("student,instance\n" + "k" * 300 + ",kim\n", "2:1: cell 1 has 300 characters; a roster cell has at most 200"),
    ("student,instance\n" + "k" * 200_000 + ",kim\n", "2:1: the line has 200004 characters; a roster line has at most 1000"),
    ("student,instance,uri\nkim,kim,qemu+ssh://-oProxyCommand=id/system\n", "2:1: uri of kim: 'qemu+ssh://-oProxyCommand=id/system' is not a libvirt URI"),
    ("student,instance,uri\nkim,kim,qemu+ssh://h/system?command=/bin/sh\n", "2:1: uri of kim: 'qemu+ssh://h/system?command=/bin/sh': the URI parameter 'command' is not allowed"),
])
def test_roster_mistakes_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(text)
    with pytest.raises(LabError) as info:
        read_roster(path)
    assert message in str(info.value)


def test_a_roster_byte_that_is_not_utf8_is_reported_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes("student,instance\nkim,kim\n\u00e9lee,lee\n".encode("latin-1"))
    with pytest.raises(LabError) as info:
        read_roster(path)
    assert str(info.value).endswith("r.csv:3:1: byte 0xe9 is not UTF-8; save the roster as CSV UTF-8")


def test_a_bad_roster_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.clihelp import run_lab

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    roster = tmp_path / "r.csv"
    roster.write_text('student,instance\n"kim\nlee",lee\n')
    result = run_lab("grade", "tests/data/labs/solo/lab.yaml", "--roster", str(roster), "--out", str(tmp_path / "grades"))
    assert result.exit_code == 2 and "a quoted cell must end on its line" in result.stderr
    assert not (tmp_path / "grades").exists()


# ------------------------------------------------------------------------- gradebook


def document(student: str, statuses: dict[str, str], scores: dict[str, float]) -> RunDocument:
    steps = [{"id": k, "title": {"ko": k, "en": k}, "status": v, "points": 3, "score": scores.get(k, 0.0),
              "observed": "" if v == "PASS" else f"{k} observed", "hint": {"ko": "힌트", "en": "hint"}, "checks": []}
             for k, v in statuses.items()]
    return RunDocument.from_json({"lab": "solo", "instance": student, "student": student, "score": sum(scores.values()),
                                  "max": 9, "steps": steps, "error": None, "started": "t0"})


def test_gradebook_writes_error_never_zero_for_unchecked_labs(solo) -> None:
    docs = [document("kim", {"account": "PASS", "web": "PASS", "motd": "PASS"}, {"account": 2, "web": 6, "motd": 1}),
            document("lee", {"account": "FAIL", "web": "BLOCKED", "motd": "FAIL"}, {}),
            document("park", {"account": "ERROR", "web": "ERROR", "motd": "ERROR"}, {})]
    rows = list(csv.reader(io.StringIO(grades_csv(solo, docs))))
    assert rows[0] == ["student", "instance", "account", "web", "motd", "total", "max", "notes"]
    assert rows[1][2:7] == ["2", "6", "1", "9", "9"]
    assert rows[2][2:7] == ["0", "0", "0", "0", "9"]
    assert rows[3][2:6] == ["ERROR", "ERROR", "ERROR", "ERROR"] and rows[3][7] == "account: account observed"

    suites = ET.fromstring(junit_xml(solo, docs))
    counts = {s.get("name"): (s.get("failures"), s.get("errors"), s.get("skipped")) for s in suites}
    assert counts == {"kim": ("0", "0", "0"), "lee": ("2", "0", "1"), "park": ("0", "3", "0")}

    page = report_html(solo, docs, "now")
    assert page.count("<td class='ERROR'>ERROR</td>") == 6  # the class table and park's details and "lee" in page and "<script" not in page
