"""`lab list / validate / plan / schema / diagram`: the labs of this checkout, read and planned,
nothing deployed. Pure core underneath: none of these touches libvirt."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from hyperlab.cli.app import InstanceOpt, JsonOpt, app, check_instance, err, host_errors, out, output_file, reports_mistakes
from hyperlab.core.errors import LabError, UsageError, display_path, printable
from hyperlab.core.inventory import is_inventory, load_inventory
from hyperlab.core.load import LoadedLab, find_root, lab_ids, load_any, load_lab
from hyperlab.core.yamlsrc import read_yaml
from hyperlab.core.paths import output_folder
from hyperlab.core.plan import HostFacts, Plan
from hyperlab.core.plan import plan as make_plan
from hyperlab.core.schema import SCHEMAS, schema_text
from hyperlab.core.units import format_size
from hyperlab.host.graphviz import diagram_png, diagram_svg
from hyperlab.render.diagram import LANGS
from hyperlab.render.libvirt_xml import all_xml


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
        # Text, not markup: a title is the author's free text, `[brackets]` included
        table.add_row(Text(row["id"]), Text(printable(row["title"]["en"]) + "\n" + printable(row["title"]["ko"])),
                      Text(row["topology"]), str(row["nodes"]), str(row["steps"]), str(row["points"]))
    out.print(table)


@app.command()
@reports_mistakes
def validate(refs: Annotated[list[str], typer.Argument(help="Lab ids, lab.yaml files, topology files or hosts files.")]) -> None:
    """Check labs, topologies and a class's hosts files; every problem is printed as file:line:column: message."""
    root = find_root()
    problems = []
    for ref in refs:
        try:
            if Path(ref).is_file() and is_inventory(source := read_yaml(Path(ref))):
                hosts = load_inventory(Path(ref), source)
                out.print(f"ok: {display_path(hosts.source.path)} ({len(hosts.names)} hosts)", markup=False)
                continue
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
    if accel not in ("kvm", "tcg"):
        raise UsageError(f"--accel must be kvm or tcg, not {accel!r}")
    if xml is not None:
        output_folder(xml, "--xml")
    the_plan = make_plan(load_lab(lab), check_instance(instance), HostFacts(accel=accel))  # type: ignore[arg-type]
    if xml is not None:
        xml.mkdir(parents=True, exist_ok=True)
        for name, text in all_xml(the_plan).items():
            (xml / name).write_text(text)
        err.print(f"wrote {len(all_xml(the_plan))} files to {xml}", markup=False)
    if as_json:
        print(the_plan.model_dump_json(indent=2))
        return
    _print_plan(the_plan)


def _print_plan(p: Plan) -> None:
    """One block per object, never a truncated cell: the plan is read to be trusted."""
    kind = "kvm" if p.accel == "kvm" else "qemu (software emulation)"
    lines = [f"[bold]{p.lab}[/] instance [bold]{p.instance}[/]: topology {p.topology} (hash {p.topology_hash}), domain type {kind}"]
    hs = p.host_side
    lines.append(f"host side: namespace {hs.netns}; transit {hs.host_end} (host, {hs.host_veth}) <-> {hs.netns_end} (namespace)")
    if hs.routes:
        lines.append(f"  host routes: {', '.join(map(str, hs.routes))}")
    lines.append(f"storage pool {p.pool} at {p.pool_path}")
    lines.append("")
    for net in p.networks:
        host = f", host side {net.host_address} in {hs.netns}" if net.host_address else ", no host side"
        lines.append(f"[bold]network {net.name}[/] {net.cidr} {net.mode} -> {net.libvirt_name} on bridge {net.bridge}{host}")
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
    """Write the JSON Schemas of topology, lab and hosts files (for editors and docs)."""
    target = output_folder(out_dir, "--out") if out_dir else find_root() / "schema"
    target.mkdir(parents=True, exist_ok=True)
    for name, model in SCHEMAS.items():
        path = target / f"{name}.schema.json"
        path.write_text(schema_text(model))
        out.print(f"wrote {display_path(path)}", markup=False)


@app.command()
@reports_mistakes
@host_errors
def diagram(
    lab: Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write: FILE.svg or FILE.png (default: SVG on stdout).")] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the labels: ko or en.")] = "ko",
    step: Annotated[str | None, typer.Option("--step", help="Highlight what this step is about (its nodes, switches, forwards, moves).")] = None,
) -> None:
    """Draw the lab's topology with Graphviz: the host's networks and nodes, and inside each nested
    node its virtual switches and guests; routers, port forwards, migrations and replicas."""
    if output is not None:
        output_file(output, "--output")
        if output.suffix.lower() not in (".svg", ".png"):
            raise UsageError(f"--output {printable(str(output))}: give a .svg or .png file")
    if lang not in LANGS:
        raise UsageError(f"--lang {printable(lang)}: use one of {', '.join(LANGS)}")
    loaded = load_lab(lab)
    if step is not None and step not in {s.id for s in loaded.lab.steps}:
        raise UsageError(f"--step {printable(step)}: {loaded.lab.id} has no such step; steps: "
                         + ", ".join(s.id for s in loaded.lab.steps))
    if output is not None and output.suffix.lower() == ".png":
        output.write_bytes(diagram_png(loaded, lang, step))
    else:
        svg = diagram_svg(loaded, lang, step)
        if output is None:
            sys.stdout.write(svg)
            return
        output.write_text(svg, encoding="utf-8")
    err.print(f"wrote {printable(str(output))}", markup=False)
