"""Golden error tests: each file in tests/data/invalid/ must produce exactly its expected line.

A file's first line is `# expect: LINE:COLUMN: message`; `lab validate FILE` must print exactly
`FILE:LINE:COLUMN: message` (FILE as given, relative to the project root) and exit with 2.
One parametrized case per file, so one failure never hides the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.clihelp import run_lab

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "data" / "invalid"
CASES = sorted(p for p in INVALID.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def expectation(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: LINE:COL: message'"
    return first.removeprefix("# expect: ")


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_file_gives_its_one_line_error(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    relative = path.relative_to(ROOT)
    result = run_lab("validate", str(relative))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"{relative}:{expectation(path)}"]
    assert result.stdout == ""
