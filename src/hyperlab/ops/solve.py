"""`lab solve`: the reference solutions, run through the guest agent in `requires` order.

Instructors use it to demonstrate a step; CI uses it to prove that each checker turns from FAIL
to PASS. Like the start state, each solution action leaves a marker in the guest and runs once
per overlay; `lab reset` of a node makes it solvable again.
"""

from __future__ import annotations

from collections.abc import Callable

import libvirt

from hyperlab.core.errors import UsageError
from hyperlab.core.fanout import fan_out
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan, PlanNode
from hyperlab.core.steps import closure, order, unknown_step
from hyperlab.guest.agent import agent_channel
from hyperlab.guest.runner import run_once
from hyperlab.ops.secrets import script_values


def steps_to_solve(loaded: LoadedLab, only: list[str] | None) -> list[str]:
    """The steps to run, in an order where each comes after what it requires."""
    lab = loaded.lab
    problem = unknown_step(lab, only or [])
    if problem:
        raise UsageError(problem)
    wanted = closure(lab, set(only)) if only else {s.id for s in lab.steps}
    ranks = order(lab)
    return sorted(wanted, key=lambda s: ranks[s])


def nic_facts(node: PlanNode) -> str:
    """A node's NICs as the lesson gives them, as shell variables for solution scripts.

    A student tells NICs apart by their MAC (as the seed's students do by the VM's settings);
    a script reads the same facts here: NIC_<NETWORK>_MAC and NIC_<NETWORK>_ADDR (address/prefix).
    """
    lines = [f"# {node.name}: its NICs (network, MAC, the lesson's address)"]
    for nic in node.nics:
        var = "".join(c if c.isalnum() else "_" for c in nic.network).upper()
        lines.append(f"NIC_{var}_MAC={nic.mac}")
        lines.append(f"NIC_{var}_ADDR={nic.ip.with_prefixlen if nic.ip is not None else ''}")
    return "\n".join(lines) + "\n"


def solve(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: list[str] | None = None,
          progress: Callable[[str, str], None] = lambda _n, _p: None) -> list[str]:
    """Run the solutions; returns the steps that had none (a lab author's gap, reported by the caller)."""
    steps = {s.id: s for s in loaded.lab.steps}
    values = script_values(loaded, plan)
    unsolved = []
    for step_id in steps_to_solve(loaded, only):
        step = steps[step_id]
        if not step.solution:
            unsolved.append(step_id)
            continue
        for k, action in enumerate(step.solution):
            def one(name: str, k: int = k, run: str = action.run) -> None:
                node = plan.node(name)
                result = run_once(agent_channel(conn, node), f"solve-{step_id}-{k}", loaded.folder / run,
                                  {**values, "nics.env": nic_facts(node)})
                progress(name, f"{step_id}: {run} {'already ran' if result is None else 'done'}")

            fan_out(one, action.nodes)
    return unsolved
