"""Checkpoints of an instance: their names, which nodes can have one, and what a reset does (pure).

A checkpoint is a libvirt internal snapshot of a running node, disk and memory, kept inside the
node's own qcow2 overlay: restoring it takes seconds and the node runs on from that moment, with
no boot. Every node that can have one gets `start` at the end of `lab up` (and of a clean
`lab reset`); `lab checkpoint save NAME` takes one of the whole instance; `lab reset --to STEP`
keeps `step-<STEP>`, the state right after that step's reference solution, made on first use.
`lab down` deletes the overlays, and the checkpoints with them.

Nodes booted from UEFI firmware (the Windows nodes) or with a TPM cannot have one: their
firmware variables and TPM state live in files outside the qcow2 overlay, which an internal
snapshot cannot hold. Those nodes are reset the clean way (a new overlay, boot, start state).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hyperlab.core.plan import PlanNode

START = "start"
STEP_PREFIX = "step-"
SNAPSHOT_PREFIX = "hl-"
NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


def check_name(name: str) -> str:
    """A name the user gives `lab checkpoint save` or `lab reset --to`: lower-case letters, digits, dashes."""
    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a checkpoint name: use lower-case letters, digits and dashes, "
                         "starting with a letter, at most 40 characters (for example before-migration)")
    return name


def check_user_name(name: str) -> str:
    """A name for `lab checkpoint save`: not one hyperlab keeps for itself."""
    check_name(name)
    if name == START or name.startswith(STEP_PREFIX):
        raise ValueError(f"{name!r} is hyperlab's own checkpoint ({START!r} after the start state, "
                         f"'{STEP_PREFIX}<STEP>' after a step's solution): choose another name")
    return name


def step_checkpoint(step_id: str) -> str:
    return f"{STEP_PREFIX}{step_id}"


def snapshot_name(checkpoint: str) -> str:
    """The libvirt snapshot's name: ours are told apart from the user's own snapshots by the prefix."""
    return f"{SNAPSHOT_PREFIX}{checkpoint}"


def checkpoint_of(snapshot: str) -> str | None:
    name = snapshot[len(SNAPSHOT_PREFIX):] if snapshot.startswith(SNAPSHOT_PREFIX) else ""
    return name if NAME.fullmatch(name) else None


def unavailable(node: PlanNode) -> str | None:
    """Why `node` cannot have a checkpoint, or None when it can."""
    if node.firmware == "uefi":
        return "its UEFI variables live outside its disk, where a checkpoint cannot keep them"
    if node.tpm:
        return "its TPM state lives outside its disk, where a checkpoint cannot keep it"
    return None


@dataclass(frozen=True)
class ResetPlan:
    """How `lab reset` puts each node back: from a checkpoint (seconds) or the clean way (boot)."""

    restore: tuple[str, ...]
    clean: tuple[str, ...]


def plan_reset(names: list[str], has_start: set[str], clean: bool) -> ResetPlan:
    """Nodes with a `start` checkpoint are restored from it, unless --clean; the others are reset clean."""
    if clean:
        return ResetPlan((), tuple(names))
    return ResetPlan(tuple(n for n in names if n in has_start), tuple(n for n in names if n not in has_start))
