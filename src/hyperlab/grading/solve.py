"""`lab solve`: the reference solutions, run through the guest agent in `requires` order.

Instructors use it to demonstrate a step; CI uses it to prove that each checker turns from FAIL
to PASS. Like the start state, each solution action leaves a marker in the guest and runs once
per overlay; `lab reset` of a node makes it solvable again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import libvirt

from hyperlab.deploy import channel_for, instance_secrets, run_once
from hyperlab.errors import UsageError
from hyperlab.grading.outcome import closure, order
from hyperlab.load import LoadedLab
from hyperlab.plan import Plan


def steps_to_solve(loaded: LoadedLab, only: list[str] | None) -> list[str]:
    """The steps to run, in an order where each comes after what it requires."""
    lab = loaded.lab
    ids = [s.id for s in lab.steps]
    for step_id in only or []:
        if step_id not in ids:
            raise UsageError(f"--step {step_id}: not a step of {lab.id}; steps: {', '.join(ids)}")
    wanted = closure(lab, set(only)) if only else set(ids)
    ranks = order(lab)
    return sorted(wanted, key=lambda s: ranks[s])


def solve(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: list[str] | None = None,
          progress: Callable[[str, str], None] = lambda _n, _p: None) -> list[str]:
    """Run the solutions; returns the steps that had none (a lab author's gap, reported by the caller)."""
    steps = {s.id: s for s in loaded.lab.steps}
    values = instance_secrets(plan)
    unsolved = []
    for step_id in steps_to_solve(loaded, only):
        step = steps[step_id]
        if not step.solution:
            unsolved.append(step_id)
            continue
        for k, action in enumerate(step.solution):
            def one(name: str, k: int = k, run: str = action.run) -> None:
                result = run_once(channel_for(conn, plan.node(name)), f"solve-{step_id}-{k}", loaded.folder / run, values)
                progress(name, f"{step_id}: {run} {'already ran' if result is None else 'done'}")

            with ThreadPoolExecutor(max_workers=len(action.nodes)) as pool:
                for future in [pool.submit(one, name) for name in action.nodes]:
                    future.result()
    return unsolved
