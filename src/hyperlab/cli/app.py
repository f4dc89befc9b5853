"""`lab`: the command line. The only place that prints and chooses exit codes.

User mistakes (a bad file, a wrong argument) are one line each on stderr and exit code 2;
library code raises, this module reports.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from hyperlab.core.errors import LabError, UsageError, display_path
from hyperlab.core.load import LoadedLab, find_root, lab_ids, load_any, load_lab
from hyperlab.core.model import _ident, format_size

app = typer.Typer(
    name="lab",
    help="hyperlab: deploy, check and grade virtualization lab exercises.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

InstanceOpt = Annotated[str, typer.Option("--instance", "-i", help="Instance name: one student's copy of the lab.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def reports_mistakes(func: F) -> F:
    """Turn user mistakes into one line each and exit code 2; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LabError as exc:
            for problem in exc.problems:
                err.print(str(problem), markup=False)
            raise typer.Exit(2) from None
        except UsageError as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _instance(name: str) -> str:
    try:
        return _ident(name)
    except ValueError as exc:
        raise UsageError(f"--instance: {exc}") from None


@app.command("list")
@reports_mistakes
def list_labs(as_json: JsonOpt = False) -> None:
    """List the labs in this checkout."""
    root = find_root()
    labs = [load_lab(lab_id, root) for lab_id in lab_ids(root)]
    rows: list[dict[str, Any]] = [{"id": l.lab.id, "title": {"ko": l.lab.title.ko, "en": l.lab.title.en}, "topology": l.lab.topology,
             "nodes": len(l.topology.topology.nodes), "steps": len(l.lab.steps),
             "points": sum(s.points for s in l.lab.steps)} for l in labs]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("lab", "title", "topology", "nodes", "steps", "points")
    for column in table.columns:
        column.overflow = "fold"
    for row in rows:
        table.add_row(row["id"], f"{row['title']['en']}\n{row['title']['ko']}", row["topology"],
                      str(row["nodes"]), str(row["steps"]), str(row["points"]))
    out.print(table)


@app.command()
@reports_mistakes
def validate(refs: Annotated[list[str], typer.Argument(help="Lab ids, lab.yaml files or topology files.")]) -> None:
    """Check labs and topologies; every problem is printed as file:line:column: message."""
    root = find_root()
    problems = []
    for ref in refs:
        try:
            loaded = load_any(ref, root)
        except LabError as exc:
            problems += exc.problems
            continue
        if isinstance(loaded, LoadedLab):
            lab = loaded.lab
            out.print(f"ok: {display_path(loaded.source.path)} ({len(lab.steps)} steps, "
                      f"{sum(s.points for s in lab.steps)} points, topology {lab.topology})", markup=False)
        else:
            out.print(f"ok: {display_path(loaded.source.path)} ({len(loaded.topology.nodes)} nodes)", markup=False)
    if problems:
        raise LabError(problems)


@app.command()
@reports_mistakes
def plan(
    lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")],
    instance: InstanceOpt = "default",
    accel: Annotated[str, typer.Option(help="kvm or tcg (software emulation): the domain type to plan for.")] = "kvm",
    as_json: JsonOpt = False,
    xml: Annotated[Path | None, typer.Option("--xml", help="Write every libvirt XML to this folder, one file per object.")] = None,
) -> None:
    """Show everything `lab up` would create: networks, host side, volumes, domains."""
    from hyperlab.render.libvirt_xml import all_xml
    from hyperlab.core.plan import HostFacts
    from hyperlab.core.plan import plan as make_plan

    if accel not in ("kvm", "tcg"):
        raise UsageError(f"--accel must be kvm or tcg, not {accel!r}")
    the_plan = make_plan(load_lab(lab), _instance(instance), HostFacts(accel=accel))  # type: ignore[arg-type]
    if xml is not None:
        xml.mkdir(parents=True, exist_ok=True)
        for name, text in all_xml(the_plan).items():
            (xml / name).write_text(text)
        err.print(f"wrote {len(all_xml(the_plan))} files to {xml}", markup=False)
    if as_json:
        print(the_plan.model_dump_json(indent=2))
        return
    _print_plan(the_plan)


def _print_plan(p: Any) -> None:
    """One block per object, never a truncated cell: the plan is read to be trusted."""
    kind = "kvm" if p.accel == "kvm" else "qemu (software emulation)"
    lines = [f"[bold]{p.lab}[/] instance [bold]{p.instance}[/]: topology {p.topology} (hash {p.topology_hash}), domain type {kind}"]
    hs = p.host_side
    lines.append(f"host side: namespace {hs.netns}; transit {hs.host_end} (host, {hs.host_veth}) <-> {hs.netns_end} (namespace)")
    if hs.routes:
        lines.append(f"  host routes: {', '.join(map(str, hs.routes))}")
    lines.append(f"storage pool {p.pool} at {p.pool_path}")
    lines.append("")
    for n in p.networks:
        host = f", host side {n.host_address} in {hs.netns}" if n.host_address else ", no host side"
        lines.append(f"[bold]network {n.name}[/] {n.cidr} {n.mode} -> {n.libvirt_name} on bridge {n.bridge}{host}")
    for wave, names in enumerate(p.waves()):
        lines.append("")
        lines.append(f"[bold]boot wave {wave}[/]: {', '.join(names)}")
    for n in p.nodes:
        lines.append("")
        flags = ", nested" if n.nested else ""
        lines.append(f"[bold]node {n.name}[/] -> domain {n.domain} (hostname {n.hostname})")
        lines.append(f"  {n.image} ({n.os}, {n.firmware}{', secure boot' if n.secure_boot else ''}"
                     f"{', TPM 2.0' if n.tpm else ''}), {n.vcpus} vCPU, {format_size(n.memory)}{flags}, channel {n.channel}")
        for c in n.nics:
            addr = f"{c.ip or 'no address'}" + (" (set by the student)" if c.set_by == "student" else "")
            gw = f" gw {c.gateway}" if c.gateway and c.set_by == "lab" else ""
            lines.append(f"  nic {c.network}: {addr}{gw}, mac {c.mac}, slot {c.pci_slot:#04x} -> {c.libvirt_network}")
        for v in n.volumes:
            base = f" over {v.backing}" if v.backing else " (empty)"
            lines.append(f"  volume {v.device} {v.path} {format_size(v.capacity)}{base}")
        if n.kernel:
            lines.append(f"  boot {n.kernel} {n.initrd} '{n.cmdline}'")
        if n.credentials:
            lines.append(f"  specialize: systemd credentials {', '.join(sorted(n.credentials))} (SMBIOS)")
        if n.unattend_iso:
            lines.append(f"  specialize: unattend medium {n.unattend_iso}")
    for line in lines:
        out.print(line)


@app.command()
@reports_mistakes
def schema(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the schema files (default: schema/ in the checkout).")] = None,
) -> None:
    """Write the JSON Schemas of topology and lab files (for editors and docs)."""
    from hyperlab.core.schema import write_schemas

    target = out_dir or find_root() / "schema"
    for path in write_schemas(target):
        out.print(f"wrote {display_path(path)}", markup=False)


@app.command()
@reports_mistakes
def diagram(
    lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="SVG file to write (default: stdout).")] = None,
) -> None:
    """Draw the lab's topology (nodes, networks, addresses, nested guests) as SVG."""
    from hyperlab.render.diagram import diagram_svg

    svg = diagram_svg(load_lab(lab))
    if output is None:
        sys.stdout.write(svg)
    else:
        output.write_text(svg)
        err.print(f"wrote {output}", markup=False)


# ------------------------------------------------------------------ deployed labs

AccelOpt = Annotated[str, typer.Option("--accel", help="auto (KVM only where it really works), kvm, or tcg (software emulation).")]


class _Session:
    """What the deploy commands share: the lab, its plan for this host, and a libvirt connection."""

    def __init__(self, lab: str, instance: str, accel: str = "auto", *, deploying: bool = False) -> None:
        from hyperlab.host.accel import resolve_accel
        from hyperlab.ops.deploy import host_plan
        from hyperlab.images.store import ImageStore
        from hyperlab.host.conn import connect

        self.loaded = load_lab(lab)
        self.instance = _instance(instance)
        if accel not in ("auto", "kvm", "tcg"):
            raise UsageError(f"--accel must be auto, kvm or tcg, not {accel!r}")
        self.accel = resolve_accel(accel)  # type: ignore[arg-type]
        self.plan = host_plan(self.loaded, self.instance, self.accel.accel, deploying=deploying)
        self.store = ImageStore()
        self.conn = connect()
        self.started = time.monotonic()

    def node(self, name: str) -> Any:
        """The plan of a node the user named; a name not in the lab is a usage mistake."""
        try:
            return self.plan.node(name)
        except KeyError:
            names = ", ".join(n.name for n in self.plan.nodes)
            raise UsageError(f"unknown node {name!r}; nodes of {self.plan.lab}: {names}") from None

    def progress(self, node: str, phase: str) -> None:
        err.print(f"[dim]{time.monotonic() - self.started:7.1f}s[/] [bold]{node}[/]: {phase}")

    def changing(self, command: str) -> AbstractContextManager[None]:
        """The instance's lock, held while `command` changes it (refused if another command holds it)."""
        from hyperlab.host.instance_lock import changing

        return changing(self.plan, command)


def _host_errors(func: F) -> F:
    """Problems of the host or of the deployment: one line, exit 1 (not the student's YAML)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hyperlab.host.accel import AccelUnavailable
        from hyperlab.ops.deploy import NotReady, StartStateFailed
        from hyperlab.guest.base import ChannelError
        from hyperlab.host.hostnet import HostNetError
        from hyperlab.images.store import ImageError
        from hyperlab.host.instance_lock import InstanceBusy
        from hyperlab.host.apply import GoldenImageProblem, StaleInstance
        from hyperlab.host.conn import ForeignObject, HostProblem

        try:
            return func(*args, **kwargs)
        except (ForeignObject, StaleInstance, InstanceBusy) as exc:
            for line in str(exc).splitlines():
                err.print(f"refused: {line}", markup=False)
            raise typer.Exit(2) from None
        except AccelUnavailable as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(2) from None
        except (HostProblem, GoldenImageProblem, ImageError, HostNetError, NotReady, StartStateFailed, ChannelError) as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _status_table(session: _Session, as_json: bool) -> bool:
    from hyperlab.ops.deploy import status

    nodes = status(session.conn, session.plan)
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


@app.command()
@reports_mistakes
@_host_errors
def up(lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")], instance: InstanceOpt = "default",
       accel: AccelOpt = "auto",
       timeout: Annotated[float, typer.Option(help="Seconds each node may take to become ready.")] = 900,
       var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE: override a lab variable for this instance (repeatable).")] = None) -> None:
    """Deploy the lab: networks, overlays, domains; wait until every node is ready; run the start state."""
    from hyperlab.ops.deploy import ensure_images, up as deploy_up
    from hyperlab.core.variables import parse_overrides

    overrides = parse_overrides(var or [], load_lab(lab).lab.variables)
    session = _Session(lab, instance, accel, deploying=True)
    err.print(f"accel: {session.accel.accel} ({session.accel.reason})", markup=False)
    with session.changing("up"):
        ensure_images(session.store, {v.image for n in session.plan.nodes for v in n.volumes if v.image}, session.progress)
        changes = deploy_up(session.conn, session.loaded, session.plan, timeout=timeout, progress=session.progress,
                            variables=overrides)
    made = [c for c in changes if c.action != "kept"]
    err.print(f"{len(made)} object(s) created or started, {len(changes) - len(made)} kept", markup=False)
    if not _status_table(session, as_json=False):
        raise typer.Exit(1)


@app.command()
@reports_mistakes
@_host_errors
def status(lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")], instance: InstanceOpt = "default",
           as_json: JsonOpt = False) -> None:
    """Show each node's state and whether its guest agent answers. Exit 0 when every node is ready."""
    if not _status_table(_Session(lab, instance, "tcg"), as_json):
        raise typer.Exit(1)


@app.command()
@reports_mistakes
@_host_errors
def down(lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")], instance: InstanceOpt = "default") -> None:
    """Remove exactly what this instance owns: domains, networks, volumes, pool, host side."""
    from hyperlab.ops.deploy import down as deploy_down

    session = _Session(lab, instance, "tcg")
    with session.changing("down"):
        changes = deploy_down(session.conn, session.plan, session.progress)
    for change in changes:
        out.print(str(change), markup=False)
    if not changes:
        out.print(f"nothing of {session.plan.lab} instance {session.plan.instance} is deployed", markup=False)


@app.command()
@reports_mistakes
@_host_errors
def reset(lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")],
          nodes: Annotated[list[str] | None, typer.Argument(help="Nodes to reset (default: all).")] = None,
          instance: InstanceOpt = "default",
          timeout: Annotated[float, typer.Option(help="Seconds each node may take to become ready.")] = 900) -> None:
    """Put nodes back to their start: a new overlay on the golden image, specialization, start state."""
    from hyperlab.ops.deploy import reset as deploy_reset

    session = _Session(lab, instance, "tcg")
    names = [session.node(n).name for n in nodes] if nodes else [n.name for n in session.plan.nodes]
    with session.changing("reset"):
        deploy_reset(session.conn, session.loaded, session.plan, names, timeout=timeout, progress=session.progress)
    _status_table(session, as_json=False)


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@reports_mistakes
@_host_errors
def exec_(lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")],
          node: Annotated[str, typer.Argument(help="Node to run the command on.")],
          command: Annotated[list[str], typer.Argument(help="The command, after --.")],
          instance: InstanceOpt = "default",
          timeout: Annotated[float, typer.Option(help="Seconds before the command is killed.")] = 600,
          stdin: Annotated[bool, typer.Option("--stdin", help="Send this standard input to the command "
                                              "(read to its end first), like `kubectl exec -i`.")] = False) -> None:
    """Run a command on a node through its guest agent; exit code, stdout and stderr are the command's."""
    from hyperlab.ops.deploy import channel_for

    session = _Session(lab, instance, "tcg")
    # opt-in: a standard input inherited from a parent that never closes it would hang every exec
    data = sys.stdin.buffer.read() if stdin else None
    result = channel_for(session.conn, session.node(node)).run(command, input=data, timeout=timeout)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.timed_out:
        err.print(f"error: timed out after {timeout:.0f}s", markup=False)
        raise typer.Exit(124)
    raise typer.Exit(result.exit_code)


@app.command()
@reports_mistakes
@_host_errors
def console(lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")],
            node: Annotated[str, typer.Argument(help="Node whose serial console to attach to.")],
            instance: InstanceOpt = "default") -> None:
    """Attach to a node's serial console (leave with Ctrl+]). It listens on this host only."""
    import os

    session = _Session(lab, instance, "tcg")
    os.execvp("virsh", ["virsh", "-c", "qemu:///system", "console", session.node(node).domain])


def _mount_sub_apps() -> None:
    from hyperlab.cli import doctor as cli_doctor, grading as cli_grading
    from hyperlab.cli.image import image_app

    cli_doctor.register(app)
    cli_grading.register(app)
    app.add_typer(image_app, name="image", help="Build and list golden images.")


_mount_sub_apps()
