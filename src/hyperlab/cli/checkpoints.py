"""`lab checkpoint save / list / delete`: an instance's checkpoints (`lab reset --to NAME` restores one).

The work is `hyperlab.ops.checkpoints` and `hyperlab.host.checkpoints`; here the arguments and the table.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from hyperlab.cli.app import InstanceOpt, JsonOpt, LabArg, Session, host_errors, out, reports_mistakes
from hyperlab.core.checkpoints import check_name, check_user_name
from hyperlab.core.errors import UsageError
from hyperlab.host.checkpoints import checkpoints, delete
from hyperlab.ops.checkpoints import save_instance

checkpoint_app = typer.Typer(no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Checkpoint name: lower-case letters, digits and dashes.")]


def _name(name: str, user: bool) -> str:
    try:
        return check_user_name(name) if user else check_name(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@checkpoint_app.command("save")
@reports_mistakes
@host_errors
def save(lab: LabArg, name: NameArg, instance: InstanceOpt = "default") -> None:
    """Keep the whole instance as it is now, every node paused for the same moment (disk and memory);
    `lab reset LAB --to NAME` returns to it in seconds. A checkpoint of that name is replaced."""
    _name(name, user=True)
    session = Session(lab, instance)
    with session.changing("checkpoint save"):
        save_instance(session.conn, session.plan, name, session.progress)
    out.print(f"saved checkpoint {name} of {session.plan.lab} / {session.plan.instance}", markup=False)


@checkpoint_app.command("list")
@reports_mistakes
@host_errors
def list_(lab: LabArg, instance: InstanceOpt = "default", as_json: JsonOpt = False) -> None:
    """The instance's checkpoints: `start` (after the start state), `step-STEP` (after a step's
    solution, made by `lab reset --to STEP`) and those saved by name."""
    session = Session(lab, instance)
    found = checkpoints(session.conn, session.plan)
    if as_json:
        print(json.dumps({"lab": session.plan.lab, "instance": session.plan.instance,
                          "checkpoints": [{"name": c.name, "nodes": list(c.nodes), "created": c.created} for c in found]},
                         indent=2))
        return
    table = Table("checkpoint", "nodes", "created", title=f"{session.plan.lab} / {session.plan.instance}")
    for c in found:
        table.add_row(c.name, ", ".join(c.nodes), time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.created)))
    out.print(table)


@checkpoint_app.command("delete")
@reports_mistakes
@host_errors
def delete_(lab: LabArg, name: NameArg, instance: InstanceOpt = "default") -> None:
    """Delete a checkpoint from every node (`start` too: `lab reset` then boots the nodes again)."""
    _name(name, user=False)
    session = Session(lab, instance)
    with session.changing("checkpoint delete"):
        nodes = delete(session.conn, session.plan, name)
    if not nodes:
        raise UsageError(f"{session.plan.lab} / {session.plan.instance} has no checkpoint {name!r} "
                         f"(see: lab checkpoint list {session.plan.lab})")
    out.print(f"deleted checkpoint {name} from {', '.join(nodes)}", markup=False)
