"""What the checkpoint commands do: `start` after the start state, `lab checkpoint save/list/delete`,
`lab reset` from `start`, and `lab reset --to NAME|STEP`. Names and rules: `hyperlab.core.checkpoints`;
libvirt: `hyperlab.host.checkpoints`.
"""

from __future__ import annotations

from collections.abc import Callable

import libvirt

from hyperlab.core.checkpoints import START, check_name, step_checkpoint, unavailable
from hyperlab.core.errors import UsageError
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan
from hyperlab.guest.runner import Progress, quiet
from hyperlab.host.apply import Change
from hyperlab.host.checkpoints import CheckpointError, checkpoints, has, restore, save


def fresh_nodes(plan: Plan, changes: list[Change]) -> list[str]:
    """Nodes whose system disk `converge` has just made: their state is the start state once provisioned."""
    made = {c.name for c in changes if c.kind == "volume" and c.action == "created"}
    return [n.name for n in plan.nodes if n.volumes and n.volumes[0].name in made]


def take_start(conn: libvirt.virConnect, plan: Plan, names: list[str], progress: Progress = quiet) -> list[str]:
    """The `start` checkpoint of the nodes among `names` that can have one; returns those."""
    able = []
    for name in names:
        why = unavailable(plan.node(name))
        if why is None:
            able.append(name)
        else:
            progress(name, f"no checkpoint: {why}; `lab reset` of it boots it again")
    if able:
        for name in able:
            progress(name, f"saving checkpoint {START}")
        save(conn, plan, able, START)
        for name in able:
            progress(name, f"checkpoint {START} saved")
    return able


def save_instance(conn: libvirt.virConnect, plan: Plan, checkpoint: str, progress: Progress = quiet) -> None:
    """A checkpoint of every node, refused when one of them cannot have it (it would not be the instance's)."""
    for node in plan.nodes:
        why = unavailable(node)
        if why is not None:
            raise UsageError(f"checkpoint {checkpoint}: {node.name} cannot have one: {why}")
    save(conn, plan, [n.name for n in plan.nodes], checkpoint)
    for node in plan.nodes:
        progress(node.name, f"checkpoint {checkpoint} saved")


def restore_start(conn: libvirt.virConnect, plan: Plan, names: list[str], progress: Progress = quiet) -> None:
    _restore(conn, plan, names, START, progress)


def _restore(conn: libvirt.virConnect, plan: Plan, names: list[str], checkpoint: str, progress: Progress) -> None:
    late = restore(conn, plan, names, checkpoint)
    for name in names:
        progress(name, f"restored checkpoint {checkpoint}")
    for name in late:
        progress(name, "warning: its guest agent did not answer, so its clock was not set; "
                       f"Kerberos and timers may be off until it is (lab exec {plan.lab} {name} -- date)")


def reset_to(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, target: str,
             solve: Callable[[list[str]], list[str]], progress: Progress = quiet) -> str:
    """The whole instance back to a saved checkpoint, or to right after a step's reference solution.

    A saved checkpoint of that name wins; else `target` is a step: `step-<STEP>` is restored when
    every node has it, else made once (every node back to `start`, STEP and what it requires
    solved, then saved). Returns the checkpoint restored or made.
    """
    check_name(target)
    names = [n.name for n in plan.nodes]
    complete = {c.name for c in checkpoints(conn, plan) if set(c.nodes) == set(names)}
    if target in complete:
        _restore(conn, plan, names, target, progress)
        return target
    steps = {s.id for s in loaded.lab.steps}
    if target not in steps:
        saved = ", ".join(sorted(complete)) or "none"
        raise UsageError(f"--to {target}: no checkpoint and no step of {plan.lab} has that name "
                         f"(checkpoints: {saved}; steps: {', '.join(s.id for s in loaded.lab.steps)})")
    checkpoint = step_checkpoint(target)
    if checkpoint in complete:
        _restore(conn, plan, names, checkpoint, progress)
        return checkpoint
    missing = [n for n in names if not has(conn, plan, n, START)]
    if missing:
        raise CheckpointError(f"--to {target} starts from every node's {START!r} checkpoint, which "
                              f"{', '.join(missing)} lack(s); `lab reset {plan.lab} --clean` makes them")
    _restore(conn, plan, names, START, progress)
    progress(plan.instance, f"solving {target} (and what it requires) once, to keep it as {checkpoint}")
    unsolved = solve([target])
    if unsolved:
        raise CheckpointError(f"--to {target}: steps without a reference solution: {', '.join(unsolved)}")
    save(conn, plan, names, checkpoint)
    progress(plan.instance, f"checkpoint {checkpoint} saved")
    return checkpoint
