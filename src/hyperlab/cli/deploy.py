"""`lab up / status / down / reset / exec / console`: one student's instance of a lab on this host.

The work is `hyperlab.ops.deploy`; here: the session, the instance's lock around what changes it,
and the tables.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer
from rich.table import Table

from hyperlab.cli.app import (AccelOpt, ExitCode, InstanceOpt, JsonOpt, LabArg, Session, app, deployable, err,
                              exit_with, host_errors, out, reports_mistakes)
from hyperlab.core.checkpoints import check_name
from hyperlab.core.errors import UsageError
from hyperlab.core.layers import TEMPLATE_INSTANCE
from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.core.variables import Value, parse_overrides
from hyperlab.guest.agent import agent_channel
from hyperlab.core.model import DEFAULT_URI
from hyperlab.host.facts import host_plan
from hyperlab.host.instance_files import instance_variables
from hyperlab.images.layers import LayerSet, LayerStore
from hyperlab.images.registry import ensure_images
from hyperlab.ops import deploy
from hyperlab.ops.checkpoints import reset_to
from hyperlab.ops.prepare import choose, fresh_instance, images_of, prepare, refusal
from hyperlab.ops.solve import solve


def _status_table(session: Session, as_json: bool) -> bool:
    nodes = deploy.status(session.conn, session.plan)
    if as_json:
        print(json.dumps({"lab": session.plan.lab, "instance": session.plan.instance,
                          "nodes": [n.as_dict() for n in nodes]}, indent=2))
    else:
        table = Table("node", "domain", "state", "agent", "ready", title=f"{session.plan.lab} / {session.plan.instance}")
        for column in table.columns:
            column.overflow = "fold"
        for n in nodes:
            table.add_row(n.name, n.domain, n.state, "yes" if n.agent else "no", "yes" if n.ready else "no")
        out.print(table)
    return all(n.ready for n in nodes)


TimeoutOpt = Annotated[float, typer.Option(help="Seconds each node may take to become ready.")]
VarOpt = Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE: override a lab variable for this instance (repeatable).")]


def _prepare(loaded: LoadedLab, accel: str, overrides: dict[str, Value], timeout: float) -> LayerSet:
    """The lab's layer set for these variables, built from its template instance unless it is up to date."""
    template = Session(loaded, TEMPLATE_INSTANCE, accel, deploying=True, template=True)
    with template.changing("prepare"):
        ensure_images(template.store, images_of(template.loaded, template.plan), template.progress)
        return prepare(template.conn, template.loaded, template.plan, template.store, _layer_store(template),
                       overrides,
                       bring_up=lambda plan: deploy.up(template.conn, template.loaded, plan, timeout=timeout,
                                                       progress=template.progress, variables=overrides,
                                                       checkpoint=False),
                       take_down=lambda plan: deploy.down(template.conn, plan, template.progress),
                       progress=template.progress)


def _layer_store(session: Session) -> LayerStore:
    return LayerStore(session.store, session.plan.pool_path.parent)


@app.command()
@reports_mistakes
@host_errors
def up(lab: LabArg, instance: InstanceOpt = "default",
       accel: AccelOpt = "auto",
       timeout: TimeoutOpt = 900,
       var: VarOpt = None,
       prepare_first: Annotated[bool, typer.Option("--prepare", help="Build the lab's prepared layers first when "
                                                   "they are missing or stale (as `lab prepare` does), then start from them.")] = False,
       cold: Annotated[bool, typer.Option("--cold", help="Start from the golden images and run the start state, "
                                          "even when prepared layers are up to date.")] = False) -> None:
    """Deploy the lab: networks, overlays, domains; wait until every node is ready; run the start
    state. A new instance starts from the lab's prepared layers when they are up to date (`lab
    prepare`): the start state is in them, and only the lab's `personalize:` actions run."""
    if prepare_first and cold:
        raise UsageError("--prepare and --cold contradict each other: give one")
    loaded = load_lab(lab)
    overrides = parse_overrides(var or [], loaded.lab.variables)  # a mistake here changes nothing yet
    session = Session(loaded, instance, accel, deploying=True)
    err.print(f"accel: {session.accel.accel} ({session.accel.reason})", markup=False)
    with session.changing("up"):
        ensure_images(session.store, images_of(session.loaded, session.plan), session.progress)
        layers = None
        if not cold:
            layers, why = choose(session.loaded, session.plan, session.store, _layer_store(session), overrides)
            if layers is None and prepare_first and fresh_instance(session.plan) and refusal(loaded, session.plan) is None:
                session.progress(loaded.lab.id, why)
                layers = _prepare(loaded, session.accel.accel, {**instance_variables(session.plan.pool_path, loaded.lab.variables),
                                                                **overrides}, timeout)
                why = f"starting from the prepared layers {layers.folder}"
            session.progress(loaded.lab.id, why)
        changes = deploy.up(session.conn, session.loaded, session.plan, timeout=timeout, progress=session.progress,
                            variables=overrides, layers=layers)
    made = [c for c in changes if c.action != "kept"]
    err.print(f"{len(made)} object(s) created or started, {len(changes) - len(made)} kept", markup=False)
    if not _status_table(session, as_json=False):
        raise exit_with(ExitCode.FAILED)


@app.command("prepare")
@reports_mistakes
@host_errors
def prepare_(lab: LabArg, accel: AccelOpt = "auto", timeout: TimeoutOpt = 900, var: VarOpt = None) -> None:
    """Build the lab's prepared layers on this host: a template instance comes up and runs its start
    state, each node is sealed (machine id, SSH host keys, secrets removed) and shut down, and its
    disks are kept read-only in the image store. `lab up` of any new instance with the same variables
    then starts from them and skips the start state. Layers whose golden images, scripts or
    variables changed are stale and rebuilt here; layers an instance uses are never removed."""
    loaded = deployable(load_lab(lab))
    overrides = parse_overrides(var or [], loaded.lab.variables)
    why = refusal(loaded, host_plan(loaded, TEMPLATE_INSTANCE))  # before anything is made or contacted
    if why is not None:
        raise UsageError(f"cannot prepare {loaded.lab.id}: {why}")
    made = _prepare(loaded, accel, overrides, timeout)
    out.print(f"{made.folder}", markup=False)


@app.command()
@reports_mistakes
@host_errors
def status(lab: LabArg, instance: InstanceOpt = "default",
           as_json: JsonOpt = False) -> None:
    """Show each node's state and whether its guest agent answers. Exit 0 when every node is ready."""
    if not _status_table(Session(lab, instance), as_json):
        raise exit_with(ExitCode.FAILED)


@app.command()
@reports_mistakes
@host_errors
def down(lab: LabArg, instance: InstanceOpt = "default") -> None:
    """Remove exactly what this instance owns: domains, networks, volumes, pool, host side."""
    session = Session(lab, instance)
    with session.changing("down"):
        changes = deploy.down(session.conn, session.plan, session.progress)
    for change in changes:
        out.print(str(change), markup=False)
    if not changes:
        out.print(f"nothing of {session.plan.lab} instance {session.plan.instance} is deployed", markup=False)


@app.command()
@reports_mistakes
@host_errors
def reset(lab: LabArg,
          nodes: Annotated[list[str] | None, typer.Argument(help="Nodes to reset (default: all).")] = None,
          instance: InstanceOpt = "default",
          clean: Annotated[bool, typer.Option("--clean", help="A new overlay, a boot and the start state, "
                                              "instead of the start checkpoint.")] = False,
          to: Annotated[str | None, typer.Option("--to", metavar="NAME|STEP",
                                                 help="The whole instance back to a saved checkpoint, or to "
                                                      "right after STEP's reference solution.")] = None,
          timeout: Annotated[float, typer.Option(help="Seconds each node may take to become ready.")] = 900) -> None:
    """Put nodes back to their start state: from the checkpoint `lab up` kept (seconds, running, no
    boot), or with --clean a new overlay on the golden image, a boot and the start state (nodes that
    cannot have a checkpoint, such as UEFI ones, always go that way; --clean never uses the layers
    of `lab prepare`, which only a new instance's `lab up` starts from). --to NAME|STEP returns the whole
    instance to a checkpoint saved with `lab checkpoint save`, or to the state right after STEP's
    reference solution (made once, then kept as checkpoint step-STEP)."""
    if to is not None:
        if nodes or clean:
            raise UsageError("--to returns the whole instance: give no nodes and no --clean with it")
        try:
            check_name(to)
        except ValueError as exc:
            raise UsageError(f"--to: {exc}") from None
    session = Session(lab, instance)
    names = [session.node(n).name for n in nodes] if nodes else [n.name for n in session.plan.nodes]
    with session.changing("reset"):
        if to is not None:
            reset_to(session.conn, session.loaded, session.plan, to,
                     lambda steps: solve(session.conn, session.loaded, session.plan, steps, session.progress),
                     session.progress)
        else:
            deploy.reset(session.conn, session.loaded, session.plan, names, timeout=timeout,
                         progress=session.progress, clean=clean)
    _status_table(session, as_json=False)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@reports_mistakes
@host_errors
def exec_(lab: LabArg,
          node: Annotated[str, typer.Argument(help="Node to run the command on.")],
          command: Annotated[list[str], typer.Argument(help="The command, after --.")],
          instance: InstanceOpt = "default",
          timeout: Annotated[float, typer.Option(help="Seconds before the command is killed.")] = 600,
          stdin: Annotated[bool, typer.Option("--stdin", help="Send this standard input to the command "
                                              "(read to its end first), like `kubectl exec -i`.")] = False) -> None:
    """Run a command on a node through its guest agent; exit code, stdout and stderr are the command's."""
    session = Session(lab, instance)
    # opt-in: a standard input inherited from a parent that never closes it would hang every exec
    data = sys.stdin.buffer.read() if stdin else None
    result = agent_channel(session.conn, session.node(node)).run(command, input=data, timeout=timeout)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.timed_out:
        err.print(f"error: timed out after {timeout:.0f}s", markup=False)
        raise exit_with(ExitCode.TIMEOUT)
    raise typer.Exit(result.exit_code)  # the command's own exit code


@app.command()
@reports_mistakes
@host_errors
def console(lab: LabArg,
            node: Annotated[str, typer.Argument(help="Node whose serial console to attach to.")],
            instance: InstanceOpt = "default") -> None:
    """Attach to a node's serial console (leave with Ctrl+]). It listens on this host only."""
    session = Session(lab, instance)
    os.execvp("virsh", ["virsh", "-c", DEFAULT_URI, "console", session.node(node).domain])
