"""A lab's steps as a graph: what a selection requires, and an order that respects `requires` (pure).

The loader has already refused unknown steps in `requires` and cycles (`hyperlab.core.validate`),
so these walk a graph that is known to be a DAG; they loop, never recurse, on user data.
"""

from __future__ import annotations

from hyperlab.core.model import Lab


def unknown_step(lab: Lab, step_ids: list[str]) -> str | None:
    """The one line for a --step that names no step of the lab, or None."""
    known = [s.id for s in lab.steps]
    for step_id in step_ids:
        if step_id not in known:
            return f"--step {step_id}: not a step of {lab.id}; steps: {', '.join(known)}"
    return None


def closure(lab: Lab, step_ids: set[str]) -> set[str]:
    """The steps named and every step they require, directly or not."""
    by_id = {s.id: s for s in lab.steps}
    seen: set[str] = set()
    todo = list(step_ids)
    while todo:
        current = todo.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        todo += by_id[current].requires
    return seen


def order(lab: Lab) -> dict[str, int]:
    """Each step's position in a run order where every step comes after the steps it requires.

    Ties keep the lab's own order. Depth-first with an explicit stack: a long chain of
    `requires` in a hostile lab file cannot exhaust Python's recursion limit.
    """
    by_id = {s.id: s for s in lab.steps}
    placed: dict[str, int] = {}
    for step in lab.steps:
        stack = [(step.id, iter(by_id[step.id].requires))]
        while stack:
            current, pending = stack[-1]
            if current in placed:
                stack.pop()
                continue
            nxt = next((r for r in pending if r not in placed and r in by_id), None)
            if nxt is not None:
                stack.append((nxt, iter(by_id[nxt].requires)))
                continue
            placed[current] = len(placed)
            stack.pop()
    return placed
