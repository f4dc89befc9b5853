"""Property tests for the loader: whatever a user writes, the answer is a model or a `LabError`.

Never a traceback, and every problem is one line with a real place (line and column >= 1), so
the CLI can always print `file:line:column: message`. The golden corpus in tests/data/invalid/
pins the wording for known mistakes; these tests look for the mistakes nobody thought of.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from hyperlab.core import model
from hyperlab.core.errors import LabError
from hyperlab.core.load import load_any

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "chapter-2" / "lab.yaml"
TOPOLOGY = ROOT / "topologies" / "kosa-linux.yaml"

# Modest, and no deadline: each example writes a file and runs the whole pipeline.
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Every field name of every model, so random mappings often reach past "unknown field".
FIELDS = sorted({
    name
    for obj in vars(model).values()
    if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel
    for name in obj.model_fields
})


def check(path: Path) -> None:
    """Load `path`; a `LabError` is fine as long as every problem is printable as one line."""
    try:
        load_any(path, ROOT)
    except LabError as exc:
        assert exc.problems, "a LabError without problems prints nothing"
        for problem in exc.problems:
            assert problem.line >= 1 and problem.column >= 1, problem
            assert problem.message and problem.message.strip() == problem.message, problem
            assert len(problem.message.splitlines()) == 1, problem
            assert "\n" not in problem.file and "\n" not in str(problem), problem


# ---------------------------------------------------------------------- (a) anything at all


@FUZZ
@given(text=st.text(max_size=400))
def test_random_text_gives_a_model_or_lab_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.yaml"
    path.write_text(text, encoding="utf-8")
    check(path)


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_give_a_model_or_lab_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.yaml"
    path.write_bytes(data)
    check(path)


# ------------------------------------------------------------ (b) YAML-shaped structures

# Values YAML treats specially, as raw text: spliced into real files they hit the syntax paths.
TRICKY = st.sampled_from([
    "", "~", "yes", "no", "on", "NO", "0", "-1", "65", "0x1f", "0o17", "1e999", ".nan", "12:30",
    "52:54:00:12:34:56", "2024-13-45", "2024-01-01", "4GB", "4 GiB", "0MiB", "-1GiB", "192.168.1.1/24",
    "999.1.1.1", "[", "]", "{", "}", "'", '"', ":", ": x", "- x", "\t", "&a", "*a", "*nope", "!!python/none",
    "<<: {}", "|", ">-", "%TAG", "@", "`", "#", "---", "...", "\\", "a\nb", "\u00e9", "\ufeff", "x" * 300,
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), TRICKY,
)
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8), st.integers(-3, 3), st.booleans(), st.none())
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=25,
)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(FIELDS), STRUCTURES, max_size=8), flow=st.booleans())
def test_random_structures_give_a_model_or_lab_error(tmp_path: Path, data: dict[str, object], flow: bool) -> None:
    path = tmp_path / "structure.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=flow), encoding="utf-8")
    check(path)


@FUZZ
@given(data=STRUCTURES)
def test_random_top_levels_give_a_model_or_lab_error(tmp_path: Path, data: object) -> None:
    path = tmp_path / "top.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    check(path)


# ------------------------------------------------------- (b) mutations of the real files

# `key: value` where value is a plain token: block lines and entries of flow mappings alike.
_VALUE = re.compile(r"(?<=: )[^,{}\[\]\n]+")


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` after 1-3 edits a user might make: delete a line (a key), replace a value, duplicate a line."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["delete", "replace", "duplicate"]))
        i = draw(st.integers(0, len(lines) - 1))
        if action == "delete" and len(lines) > 1:
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        else:
            spots = list(_VALUE.finditer(lines[i]))
            if not spots:
                continue
            spot = draw(st.sampled_from(spots))
            value = draw(SCALARS)
            raw = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()
            line = lines[i]
            lines[i] = line[: spot.start()] + raw + line[spot.end():]
    return "".join(lines)


@pytest.fixture(scope="module")
def lab_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of chapter-2 (with its start scripts) that its mutants can overwrite."""
    folder = tmp_path_factory.mktemp("lab") / "chapter-2"
    shutil.copytree(LAB.parent, folder)
    return folder


@settings(FUZZ, max_examples=80)  # the slowest: a lab loads its topology too
@given(text=mutated(LAB.read_text(encoding="utf-8")))
def test_mutated_lab_gives_a_model_or_lab_error(lab_folder: Path, text: str) -> None:
    path = lab_folder / "lab.yaml"
    path.write_text(text, encoding="utf-8")
    check(path)


@FUZZ
@given(text=mutated(TOPOLOGY.read_text(encoding="utf-8")))
def test_mutated_topology_gives_a_model_or_lab_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kosa-linux.yaml"
    path.write_text(text, encoding="utf-8")
    check(path)


def test_the_unmutated_files_load() -> None:
    """The mutations start from valid files, so every error they find is the mutation's."""
    load_any(LAB, ROOT)
    load_any(TOPOLOGY, ROOT)
