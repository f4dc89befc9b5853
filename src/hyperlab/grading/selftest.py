"""The checker self-test: on a freshly deployed instance every step FAILs (or is BLOCKED), and after
`lab solve` every step PASSes. A checker that passes on a fresh lab proves nothing; one that fails
after the reference solution is wrong. Used by the suite for every lab that can run here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt

from hyperlab.grading.runner import run_checks
from hyperlab.ops.solve import solve
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan


def _table(document: dict[str, Any]) -> str:
    return "\n".join(f"  {s['id']}: {s['status']} {s['score']:g}/{s['points']} {(s['observed'] or '').splitlines()[:1]}"
                     for s in document["steps"])


def assert_unsolved(document: dict[str, Any]) -> None:
    wrong = [s["id"] for s in document["steps"] if s["status"] not in ("FAIL", "BLOCKED")]
    assert not document.get("error") and not wrong, (
        f"on a fresh {document['lab']} every step must FAIL or be BLOCKED; these did not: {wrong}\n{_table(document)}")


def assert_solved(document: dict[str, Any]) -> None:
    wrong = [s["id"] for s in document["steps"] if s["status"] != "PASS"]
    assert not document.get("error") and not wrong, (
        f"after `lab solve` every step of {document['lab']} must PASS; these did not: {wrong}\n{_table(document)}")


def prove_checkers(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, scratch: Path,
                   key: str | None = None, steps: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check, solve, check again; returns both result documents. The instance must be fresh from `lab up`.

    `steps` limits the proof to those steps and what they require (all steps by default).
    """
    before = run_checks(loaded, plan.instance, scratch / "before.json", key=key, steps=steps)
    assert_unsolved(before)
    unsolved = solve(conn, loaded, plan, steps)
    assert not unsolved, f"steps of {loaded.lab.id} without a reference solution: {unsolved}"
    after = run_checks(loaded, plan.instance, scratch / "after.json", key=key, steps=steps)
    assert_solved(after)
    return before, after
