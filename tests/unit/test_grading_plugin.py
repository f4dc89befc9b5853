"""The grading plugin in a throw-away checkout (pytester): outcomes, partial credit, BLOCKED,
collection errors, step selection, ordering and the signed evidence file.

These checkers need no deployed lab (they use no lab fixtures), so everything here runs without
libvirt, except the "not deployed" test, which uses libvirt's built-in test driver.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hyperlab.grading import evidence

TOPOLOGY = """name: demo
networks: {lan: {cidr: 10.9.0.0/24}}
nodes: {N1: {image: debian-12, nics: [{network: lan, ip: 10.9.0.10}]}}
"""

LAB = """id: demo
title: {ko: 데모, en: Demo}
topology: demo
steps:
  - {id: later, title: {ko: 나중, en: Later}, points: 1, requires: [base]}
  - {id: base, title: {ko: 기본, en: Base}, points: 4, hint: {ko: 힌트, en: Do the base}}
  - {id: blocked, title: {ko: 막힘, en: Blocked}, points: 3, requires: [base]}
  - {id: unreachable, title: {ko: 연결, en: Unreachable}, points: 2}
  - {id: buggy, title: {ko: 버그, en: Buggy}, points: 2}
  - {id: fine, title: {ko: 좋음, en: Fine}, points: 5}
"""

CHECKERS = '''
import pytest
from hyperlab.guest.base import ChannelError

ORDER = []

@pytest.mark.step("base", weight=3)
def test_base_big():
    """the big part of base"""
    ORDER.append("base")

@pytest.mark.step("base", weight=1)
def test_base_small():
    """the small part of base"""
    observed = "off"
    assert observed == "on", f"service is {observed}, expected on"

@pytest.mark.step("later")
def test_later():
    ORDER.append("later")

@pytest.mark.step("blocked")
def test_blocked():
    raise RuntimeError("must not run: its required step failed")

@pytest.mark.step("unreachable")
def test_unreachable():
    raise ChannelError("cannot reach N1 through the guest agent: it is not running")

@pytest.mark.step("buggy")
def test_buggy():
    return {}["missing"]

@pytest.mark.step("fine")
def test_fine():
    """all good"""
    assert ORDER == ["base"], ORDER
'''


@pytest.fixture
def checkout(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "topologies").mkdir()
    (pytester.path / "topologies" / "demo.yaml").write_text(TOPOLOGY)
    (pytester.path / "labs" / "demo").mkdir(parents=True)
    (pytester.path / "labs" / "demo" / "lab.yaml").write_text(LAB)
    (pytester.path / "checkers" / "demo").mkdir(parents=True)
    return pytester


def write_checkers(pytester: pytest.Pytester, text: str, name: str = "test_demo.py") -> None:
    (pytester.path / "checkers" / "demo" / name).write_text(text)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "hyperlab.grading.plugin", "-p", "no:cacheprovider", *args)


def evidence_of(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    key = pytester.path / "key"
    result = run(pytester, "checkers/demo", "--evidence", str(pytester.path / "ev.json"), "--key", str(key), *args)
    return result, json.loads((pytester.path / "ev.json").read_text())


def by_id(document: dict) -> dict[str, dict]:
    return {s["id"]: s for s in document["steps"]}


def test_four_outcomes_partial_credit_and_requires_order(checkout: pytest.Pytester) -> None:
    write_checkers(checkout, CHECKERS)
    result, doc = evidence_of(checkout)
    steps = by_id(doc)
    assert {k: v["status"] for k, v in steps.items()} == {
        "later": "BLOCKED", "base": "FAIL", "blocked": "BLOCKED", "unreachable": "ERROR", "buggy": "ERROR", "fine": "PASS"}
    assert steps["base"]["score"] == 3.0  # weight 3 of 4 passed: 3 of its 4 points
    assert "service is off, expected on" in steps["base"]["observed"]
    assert steps["base"]["hint"] == {"ko": "힌트", "en": "Do the base"}
    assert steps["blocked"]["observed"] == "requires step base, which is FAIL"
    assert "could not check (not the student's fault)" in steps["unreachable"]["observed"]
    assert "checker error (not the student's fault): KeyError" in steps["buggy"]["observed"]
    assert steps["fine"]["score"] == 5 and doc["score"] == 8.0 and doc["max"] == 17
    # "later" is listed first in lab.yaml but requires "base": it ran after, and was blocked
    assert [s["id"] for s in doc["steps"]] == ["later", "base", "blocked", "unreachable", "buggy", "fine"]
    result.stdout.fnmatch_lines(["*BLOCKED*later*", "*score 8 / 17*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_evidence_is_signed_and_tampering_shows(checkout: pytest.Pytester) -> None:
    write_checkers(checkout, CHECKERS)
    _result, doc = evidence_of(checkout, "--student", "Kim")
    key = evidence.load_key(checkout.path / "key", create=False)
    assert doc["student"] == "Kim" and doc["signature"]["alg"] == "HMAC-SHA256"
    assert evidence.verify(doc, key, lambda _: None).ok
    cheated = json.loads(json.dumps(doc))
    cheated["score"] = 17
    verdict = evidence.verify(cheated, key, lambda _: None)
    assert not verdict.ok and "changed after it was signed" in verdict.lines[0]
    checks = [c for s in doc["steps"] for c in s["checks"]]
    assert {c["name"] for c in checks} >= {"the big part of base", "all good", "test_later"}


def test_unknown_step_fails_at_collection_in_one_line(checkout: pytest.Pytester) -> None:
    write_checkers(checkout, 'import pytest\n\n@pytest.mark.step("nat")\ndef test_x():\n    pass\n')
    result = run(checkout, "checkers/demo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_demo.py::test_x: unknown step 'nat'; steps of demo: later, base, blocked, unreachable, buggy, fine"])


@pytest.mark.parametrize("body, message", [
    ("def test_x():\n    pass\n", "*a checker needs @pytest.mark.step*"),
    ('@pytest.mark.step("base", points=3)\ndef test_x():\n    pass\n', "*unknown argument 'points'*"),
    ('@pytest.mark.step("base", weight=0)\ndef test_x():\n    pass\n', "*weight must be a positive number*"),
])
def test_malformed_checkers_fail_at_collection(checkout: pytest.Pytester, body: str, message: str) -> None:
    write_checkers(checkout, "import pytest\n\n" + body)
    result = run(checkout, "checkers/demo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_step_option_runs_the_step_and_what_it_requires(checkout: pytest.Pytester) -> None:
    write_checkers(checkout, CHECKERS)
    result, doc = evidence_of(checkout, "--step", "later")
    assert [s["id"] for s in doc["steps"]] == ["later", "base"]
    assert doc["max"] == 5
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*1 failed, 1 passed, 4 deselected, 1 blocked*"])


def test_unknown_step_option_is_one_line(checkout: pytest.Pytester) -> None:
    write_checkers(checkout, CHECKERS)
    result = run(checkout, "checkers/demo", "--step", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--step nope: not a step of demo; steps: later, base*"])


def test_tests_outside_checkers_are_left_alone(checkout: pytest.Pytester) -> None:
    checkout.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = run(checkout, "test_plain.py")
    result.assert_outcomes(passed=1)
    assert "hyperlab" not in result.stdout.str()


def test_step_marker_outside_checkers_is_refused(checkout: pytest.Pytester) -> None:
    checkout.makepyfile(test_plain='import pytest\n\n@pytest.mark.step("base")\ndef test_plain():\n    pass\n')
    result = run(checkout, "test_plain.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*only for checkers in checkers/<lab>/*"])


def test_a_lab_that_is_not_deployed_stops_at_once_in_one_line(checkout: pytest.Pytester) -> None:
    """libvirt's own test driver (test:///default) is a real libvirt connection without this lab's domains."""
    write_checkers(checkout, 'import pytest\n\n@pytest.mark.step("fine")\ndef test_x(node):\n    node("N1").sh("true")\n')
    result, doc = evidence_of(checkout, "--uri", "test:///default", "--instance", "kim")
    assert result.ret == 2
    message = "lab demo instance kim is not deployed at test:///default; start it with `lab up demo --instance kim`"
    assert doc["error"] == message
    assert {s["status"] for s in doc["steps"]} == {"ERROR"}
    assert message in result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes()


def test_lab_check_prints_the_documented_json(checkout: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lab check` runs the same checkers in their own pytest process and prints the issue's JSON shape."""
    from tests.unit.clihelp import run_lab

    write_checkers(checkout, CHECKERS)
    monkeypatch.setenv(evidence.KEY_ENV, str(checkout.path / "key"))
    result = run_lab("check", str(checkout.path / "labs" / "demo" / "lab.yaml"), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"lab", "instance", "score", "max", "steps", "error"}
    assert set(doc["steps"][0]) == {"id", "status", "points", "score", "observed", "hint"}
    assert by_id(doc)["base"]["score"] == 3.0 and doc["score"] == 8.0

    table = run_lab("check", str(checkout.path / "labs" / "demo" / "lab.yaml"), "--lang", "ko")
    assert "기본" in table.stdout and "hint: 힌트" in table.stdout and "BLOCKED" in table.stdout


def test_lab_check_without_checkers_says_where_they_belong(checkout: pytest.Pytester) -> None:
    from tests.unit.clihelp import run_lab

    result = run_lab("check", str(checkout.path / "labs" / "demo" / "lab.yaml"))
    assert result.exit_code == 2
    assert "lab demo has no checkers yet (expected test_*.py in" in result.stderr


def test_every_shipped_lab_with_checkers_collects_cleanly() -> None:
    """Collection alone proves each checker names a real step of its lab and nothing is malformed."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    folders = sorted(p for p in [*root.glob("checkers/*"), *root.glob("tests/data/checkers/*")] if any(p.glob("test_*.py")))
    assert folders, "no checkers found"
    for folder in folders:
        proc = subprocess.run([sys.executable, "-m", "pytest", str(folder), "--collect-only", "-q", "-p", "no:cacheprovider",
                               "--import-mode=importlib"], capture_output=True, text=True, cwd=root)
        assert proc.returncode == 0, f"{folder}:\n{proc.stdout}\n{proc.stderr}"


# ------------------------------------------------- `pytest checkers/` over every lab


def second_lab(pytester: pytest.Pytester) -> None:
    """A second lab whose checker file has the same name as demo's: both must collect side by side."""
    (pytester.path / "labs" / "other").mkdir(parents=True)
    (pytester.path / "labs" / "other" / "lab.yaml").write_text(LAB.replace("id: demo", "id: other"))
    (pytester.path / "checkers" / "other").mkdir(parents=True)
    uses_a_node = 'import pytest\n\n@pytest.mark.step("fine")\ndef test_x(node):\n    node("N1").sh("true")\n'
    write_checkers(pytester, uses_a_node)
    (pytester.path / "checkers" / "other" / "test_demo.py").write_text(uses_a_node)


def test_labs_with_nothing_deployed_are_one_line_each_and_skipped(checkout: pytest.Pytester) -> None:
    second_lab(checkout)
    result = run(checkout, "checkers/", "--uri", "test:///default", "--import-mode=importlib", "-ra")
    out = result.stdout.str()
    for lab_id in ("demo", "other"):
        line = f"lab {lab_id}: no instance is deployed at test:///default; start one with `lab up {lab_id}`"
        assert out.count(f"hyperlab: {line}") == 1, out  # said once, in one line
        assert re.search(rf"^SKIPPED \[1\] checkers/{lab_id}: {re.escape(line)}", out, re.M), out
    result.assert_outcomes(skipped=2)
    assert result.ret == pytest.ExitCode.OK and "Traceback" not in out


def test_lab_narrows_and_instance_names_the_instance(checkout: pytest.Pytester) -> None:
    second_lab(checkout)
    narrowed = run(checkout, "checkers/", "--uri", "test:///default", "--import-mode=importlib", "--lab", "other")
    narrowed.assert_outcomes(skipped=1, deselected=1)
    assert "lab demo" not in narrowed.stdout.str()
    named = run(checkout, "checkers/", "--uri", "test:///default", "--import-mode=importlib", "--instance", "kim")
    assert named.ret == pytest.ExitCode.INTERRUPTED  # asked for by name: not deployed is a stop, not a skip
    assert "lab demo instance kim is not deployed" in named.stdout.str()
    assert "lab other instance kim is not deployed" in named.stdout.str()


def test_each_lab_is_checked_against_every_instance_deployed(checkout: pytest.Pytester) -> None:
    """libvirt's test driver keeps its domains while a connection is open, across connections of this
    process: the plugin (run in-process) sees the two instances defined here, and only demo's."""
    import libvirt

    from hyperlab.core.plan import METADATA_NS

    second_lab(checkout)
    conn = libvirt.open("test:///default")
    defined = []
    try:
        for instance in ("kim", "lee"):
            xml = (f"<domain type='test'><name>hl.demo.{instance}.N1</name><memory>65536</memory>"
                   f"<os><type>hvm</type></os><metadata><hl:instance xmlns:hl='{METADATA_NS}' lab='demo' "
                   f"instance='{instance}' topology-hash='x'/></metadata></domain>")
            defined.append(conn.defineXML(xml))
        result = run(checkout, "checkers/", "--uri", "test:///default", "--import-mode=importlib", "--collect-only", "-q")
        out = result.stdout.str()
        assert "checkers/demo/test_demo.py::test_x[kim]" in out and "checkers/demo/test_demo.py::test_x[lee]" in out, out
        assert "checkers/other/test_demo.py::test_x" in out and "test_x[" not in out.split("checkers/other/")[1], out
        assert "hyperlab: lab other: no instance is deployed" in out and "lab demo:" not in out
    finally:
        for domain in defined:
            domain.undefine()
        conn.close()
