"""Property tests beyond the loader: rosters, evidence files and every name pattern.

Whatever a roster or an evidence file holds, reading it gives entries or one-line errors, never a
traceback; and a name that a pattern accepts can be written into XML, a shell line and the
terminal as it is: no control character, newline, quote or shell metacharacter ever passes.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperlab.core.errors import LabError, printable
from hyperlab.core.model import _ifname, _mac, _net_name, _node_name, check_id, check_uri
from hyperlab.core.validate import VARIABLE_NAME
from hyperlab.grading import evidence
from hyperlab.core.roster import read_roster
from hyperlab.images.store import InvalidImageName, validate_name

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# what must never pass a name pattern: it would end a line, a quote, an XML attribute or a word
DANGEROUS = set("\n\r\t\0\x1b\x85\u2028 '\"`$;&|<>(){}[]\\/*?!#~=%,:") | {chr(c) for c in range(32)}
NAMEISH = st.text(alphabet=st.sampled_from(sorted(DANGEROUS) + list(string.ascii_letters + string.digits + "-_.")),
                  max_size=40)


def one_line_problems(exc: LabError) -> None:
    for problem in exc.problems:
        assert problem.line >= 1 and problem.column >= 1, problem
        assert len(str(problem).splitlines()) == 1 and "\x1b" not in str(problem), problem


# --------------------------------------------------------------------------- rosters

ROSTER_CELL = st.one_of(st.text(max_size=30), st.sampled_from(["kim", "qemu:///system", "ssh", "agent", '"', '""', "#"]))
ROSTER_LINE = st.lists(ROSTER_CELL, max_size=5).map(",".join)


@FUZZ
@given(lines=st.lists(ROSTER_LINE, max_size=8), header=st.sampled_from(["student,instance", "student,instance,uri,channel", ""]))
def test_any_roster_gives_entries_or_one_line_problems(tmp_path: Path, lines: list[str], header: str) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("\n".join([header, *lines]), encoding="utf-8", errors="surrogatepass")
    try:
        entries = read_roster(path)
    except LabError as exc:
        one_line_problems(exc)
        return
    for entry in entries:
        check_id(entry.instance)
        check_uri(entry.uri)
        assert entry.slug == printable(entry.slug) and "/" not in entry.slug


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_roster_bytes_give_entries_or_one_line_problems(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(b"student,instance\n" + data)
    try:
        read_roster(path)
    except LabError as exc:
        one_line_problems(exc)


# -------------------------------------------------------------------------- evidence

JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                       max_leaves=20)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["lab", "instance", "score", "max", "steps", "signature", "domains", "x"]),
                            JSONISH, max_size=8))
def test_any_evidence_is_refused_in_one_line_unless_signed(tmp_path: Path, data: dict[str, object]) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data))
    key = b"k" * 32
    contacted: list[object] = []
    try:
        verdict = evidence.verify(evidence.read(path), key, lambda document: contacted.append(document))  # type: ignore[func-returns-value]
    except evidence.EvidenceError as exc:
        assert len(str(exc).splitlines()) == 1
        return
    assert not verdict.ok and contacted == []  # nothing random is signed with this key: nothing is asked
    assert all(len(line.splitlines()) == 1 for line in verdict.lines)


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_evidence_bytes_are_refused_in_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "e.json"
    path.write_bytes(data)
    with pytest.raises(evidence.EvidenceError) as info:
        evidence.believe(evidence.read(path), b"k" * 32)
    assert len(str(info.value).splitlines()) == 1


def test_deeply_nested_evidence_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(evidence.EvidenceError, match="nested too deeply"):
        evidence.read(path)


# ---------------------------------------------------------------------- name patterns

PATTERNS = {
    "id": check_id,
    "node name": _node_name,
    "network name": _net_name,
    "interface name": _ifname,
    "mac": _mac,
    "uri": check_uri,
    "image name": validate_name,
    "variable name": lambda v: v if VARIABLE_NAME.fullmatch(v) else (_ for _ in ()).throw(ValueError(v)),
}
ALLOWED_IN_URI = set("/:?=&.+-_@")


@pytest.mark.parametrize("kind", sorted(PATTERNS))
@FUZZ
@given(value=NAMEISH)
def test_a_name_that_passes_carries_nothing_dangerous(kind: str, value: str) -> None:
    try:
        accepted = PATTERNS[kind](value)
    except (ValueError, InvalidImageName):
        return
    allowed = ALLOWED_IN_URI if kind == "uri" else set(":") if kind == "mac" else set()
    assert not (set(accepted) & (DANGEROUS - allowed)), (kind, accepted)
    assert accepted == value.lower() if kind == "mac" else accepted == value
    assert re.fullmatch(r"[\x21-\x7e]+", accepted), (kind, accepted)  # printable ASCII, no space


# ------------------------------------------------------------------ values for a shell

@settings(FUZZ, max_examples=60)
@given(value=st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40))
def test_any_variable_value_is_read_back_by_sh_as_written(tmp_path: Path, value: str) -> None:
    """lab.env is sourced by the guests' scripts: whatever a value holds, it stays a value."""
    import subprocess

    from hyperlab.core.variables import env_text

    env = tmp_path / "lab.env"
    env.write_text(env_text({"value": value, "canary": "untouched"}), encoding="utf-8")
    proc = subprocess.run(["sh", "-c", '. ./lab.env && printf %s "$value" && printf "|%s" "$canary"'], cwd=tmp_path,
                          capture_output=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode("utf-8") == f"{value}|untouched"
