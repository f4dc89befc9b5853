"""The checker self-test: on a freshly deployed instance every step FAILs (or is BLOCKED), and after
`lab solve` every step PASSes. A checker that passes on a fresh lab proves nothing; one that fails
after the reference solution is wrong. Used by the suite for every lab that can run here.

Solving is `hyperlab.ops.solve`, above grading: the caller hands it in as `solve`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hyperlab.core.load import LoadedLab
from hyperlab.grading.document import RunDocument
from hyperlab.grading.outcome import Status
from hyperlab.grading.runner import run_checks

Solve = Callable[[list[str] | None], list[str]]  # steps (None: all) -> the steps that had no solution


def _table(document: RunDocument) -> str:
    return "\n".join(f"  {s.id}: {s.status} {s.score:g}/{s.points} {s.observed.splitlines()[:1]}" for s in document.steps)


def assert_unsolved(document: RunDocument) -> None:
    wrong = [s.id for s in document.steps if s.status not in (Status.FAIL, Status.BLOCKED)]
    assert not document.error and not wrong, (
        f"on a fresh {document.lab} every step must FAIL or be BLOCKED; these did not: {wrong}\n{_table(document)}")


def assert_solved(document: RunDocument) -> None:
    wrong = [s.id for s in document.steps if s.status is not Status.PASS]
    assert not document.error and not wrong, (
        f"after `lab solve` every step of {document.lab} must PASS; these did not: {wrong}\n{_table(document)}")


def prove_checkers(loaded: LoadedLab, instance: str, solve: Solve, scratch: Path, key: str | None = None,
                   steps: list[str] | None = None) -> tuple[RunDocument, RunDocument]:
    """Check, solve, check again; returns both results. The instance must be fresh from `lab up`.

    `steps` limits the proof to those steps and what they require (all steps by default).
    """
    before = run_checks(loaded, instance, scratch / "before.json", key=key, steps=steps)
    assert_unsolved(before)
    unsolved = solve(steps)
    assert not unsolved, f"steps of {loaded.lab.id} without a reference solution: {unsolved}"
    after = run_checks(loaded, instance, scratch / "after.json", key=key, steps=steps)
    assert_solved(after)
    return before, after
