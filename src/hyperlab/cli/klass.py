"""`lab capacity` and `lab class plan | up | status | check | down`: a class spread over several
hosts (`hosts.yaml`), each student's instance whole on one host; and `lab class host ...`, what a
class host answers when the instructor's hyperlab asks (hidden: hyperlab calls it over SSH).

Every file and argument is checked before any host is contacted. Exit codes: 0 every student is
placed / up / ready / checked; 1 some are not (the table says why); 2 a user mistake.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from hyperlab.cli.app import ExitCode, JsonOpt, LabArg, app, check_instance, deployable, err, exit_with, out, reports_mistakes
from hyperlab.core.errors import LabError, UsageError, display_path, printable
from hyperlab.core.fanout import fan_out
from hyperlab.core.inventory import LoadedInventory, default_reserve, load_inventory
from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.core.needs import lab_needs
from hyperlab.core.placement import Demand, HostOffer, capacity, place
from hyperlab.core.roster import Roster, hosts_problems, load_roster, with_hosts
from hyperlab.core.units import human_size
from hyperlab.core.variables import parse_overrides
from hyperlab.grading.remote import check_on_hosts
from hyperlab.grading.runner import run_checks, summary
from hyperlab.host.files import write_atomic
from hyperlab.grading.evidence import EvidenceError
from hyperlab.images import transfer
from hyperlab.images.store import ImageError, ImageStore
from hyperlab.ops.classrun import class_down, class_status, class_up, hello_here
from hyperlab.remote.bundle import BundleError, make_bundle, receive
from hyperlab.remote.classwork import ClassResult
from hyperlab.remote.reach import ClassHost, HostDown

F = TypeVar("F", bound=Callable[..., Any])
class_app = typer.Typer(no_args_is_help=True, help="A class over several hosts: plan, up, status, check, down.")
host_app = typer.Typer(no_args_is_help=True, hidden=True,
                       help="What a class host answers; hyperlab runs these over SSH, not people.")
class_app.add_typer(host_app, name="host")

RosterOpt = Annotated[Path, typer.Option("--roster", help="CSV: student,instance[,uri][,channel][,host].")]
HostsOpt = Annotated[Path, typer.Option("--hosts", help="The class's hosts file (hosts.yaml).")]


# ------------------------------------------------------------------------------------ inputs


def _inputs(lab: str, roster_path: Path, hosts_path: Path) -> tuple[LoadedLab, Roster, LoadedInventory]:
    """The lab, roster and hosts file, each checked, and checked against each other; and an SSH client
    to reach the hosts with."""
    if shutil.which("ssh") is None:
        raise UsageError("no ssh client on this machine: apt-get install openssh-client")
    loaded = deployable(load_lab(lab))
    inventory = load_inventory(hosts_path)
    roster = load_roster(roster_path)
    problems = hosts_problems(roster, display_path(roster_path), inventory.names, display_path(hosts_path))
    if problems:
        raise LabError(problems)
    return loaded, roster, inventory


def _offers(inventory: LoadedInventory) -> list[HostOffer]:
    """Each host's offer: from the hosts file, or (for what it leaves out) from the host's own
    `lab doctor --json`. A host that cannot say is offered as nothing, with a line saying why."""
    asks = [n for n in inventory.names if None in (inventory.host(n).memory, inventory.host(n).cpus, inventory.host(n).disk)]
    if asks and shutil.which("ssh") is None:
        raise UsageError(f"{', '.join(asks)} must be asked what they offer, and this machine has no ssh client: "
                         "apt-get install openssh-client (or give memory, cpus and disk in the hosts file)")

    def offer(name: str) -> HostOffer:
        spec = inventory.host(name)
        memory, cpus, disk = spec.memory, spec.cpus, spec.disk
        if memory is None or cpus is None or disk is None:
            try:
                facts = ClassHost(name, inventory).facts()
            except HostDown as exc:
                err.print(f"{name}: its memory, CPUs or disk are not in the hosts file and it cannot say: {exc}; "
                          "it takes no students", markup=False)
                return HostOffer(name, 0, 1, 0, 0, tuple(spec.labels), unknown=str(exc))
            memory, cpus, disk = memory or facts.memory, cpus or facts.cpus, disk or facts.disk
        reserve = spec.reserve if spec.reserve is not None else default_reserve(memory)
        return HostOffer(name, memory, cpus, disk, reserve, tuple(spec.labels))

    return fan_out(offer, inventory.names)


# ------------------------------------------------------------------------------- capacity, plan


@app.command("capacity")
@reports_mistakes
def capacity_(lab: LabArg, hosts: HostsOpt,
              students: Annotated[int | None, typer.Option("--students", help="A class of this many: how many more "
                                                           "hosts does it need?")] = None,
              like: Annotated[str | None, typer.Option("--like", help="More hosts the size of this one (default: the "
                                                       "host that holds the most students).")] = None,
              as_json: JsonOpt = False) -> None:
    """How many students of the lab each host holds, and all of them together; with --students N,
    how many more hosts a class of N needs. Memory runs out first on most hosts: each student needs
    the lab's guests and QEMU's own memory, beside the host's reserve."""
    loaded = load_lab(lab)
    inventory = load_inventory(hosts)
    if students is not None and not 1 <= students <= 100_000:
        raise UsageError(f"--students must be 1 to 100000, not {students}")
    if like is not None and like not in inventory.inventory.hosts:
        raise UsageError(f"--like {printable(like)}: not a host of {display_path(hosts)} ({', '.join(inventory.names)})")
    demand = Demand.of(lab_needs(loaded))
    offers = _offers(inventory)
    result = capacity(offers, demand, students, like)
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    table = Table("host", "memory", "reserve", "CPUs", "disk", "labels", "students", "limit",
                  title=f"{loaded.lab.id}: {human_size(demand.memory)} of memory and {human_size(demand.disk)} of disk "
                        "per student")
    for offer, row in zip(offers, result.hosts):
        table.add_row(Text(row.host), human_size(offer.memory), human_size(offer.reserve), str(offer.cpus),
                      human_size(offer.disk), Text(", ".join(offer.labels)), str(row.students), row.limit)
    out.print(table)
    out.print(f"in all: {result.total} student(s)", markup=False)
    if students is not None:
        if result.more_hosts == 0:
            out.print(f"{students} students fit on these hosts", markup=False)
        elif result.more_hosts is None:
            out.print(f"{students} students do not fit, and a host like {result.like} holds none of this lab", markup=False)
        else:
            each = next(r.students for r in result.hosts if r.host == result.like)
            out.print(f"{students} students need {result.more_hosts} more host(s) like {result.like} "
                      f"({each} students each)", markup=False)


@class_app.command("plan")
@reports_mistakes
def plan(lab: LabArg, roster: RosterOpt, hosts: HostsOpt, as_json: JsonOpt = False,
         dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the placement; do not write the roster.")] = False
         ) -> None:
    """Place each student's whole instance on one host and write the hosts into the roster's host
    column. Students placed before keep their host; a student who fits nowhere is refused with the
    shortfall. Exit 1 when a student is refused."""
    loaded, class_roster, inventory = _inputs(lab, roster, hosts)
    if not dry_run and not (os.access(roster, os.W_OK) and os.access(roster.parent, os.W_OK)):
        raise UsageError(f"--roster {printable(str(roster))}: cannot write the host column into it (no write permission "
                         "on the file or its folder); use --dry-run to only see the plan")
    placements = place(_offers(inventory), Demand.of(lab_needs(loaded)),
                       [(e.student, e.host) for e in class_roster.entries])
    new = {p.student: p.host for p in placements if p.host is not None and not p.kept}
    written = bool(new) and not dry_run
    if written:
        write_atomic(roster, with_hosts(class_roster, new))
    if as_json:
        print(json.dumps({"placements": [p.to_json() for p in placements], "roster": str(roster), "written": written},
                         indent=2, ensure_ascii=False))
    else:
        table = Table("student", "host", "note", title=f"{loaded.lab.id}: {len(placements)} student(s)")
        for column in table.columns:
            column.overflow = "fold"
        for p in placements:
            note = "placed before" if p.kept else "new" if p.host else f"refused: {p.reason}"
            table.add_row(Text(p.student), Text(p.host or "-"), Text(note, style="" if p.host else "bold red"))
        out.print(table)
        placed = sum(p.host is not None for p in placements)
        what = "written into" if written else "not written into" if dry_run and new else "unchanged in"
        out.print(f"{placed} placed, {len(placements) - placed} refused; host column {what} {roster}"
                  + (" (--dry-run)" if dry_run and new else ""), markup=False)
    if any(p.host is None for p in placements):
        raise exit_with(ExitCode.FAILED)


# ------------------------------------------------------------------------------- the class's work


def _progress(host: str, text: str) -> None:
    err.print(f"{host}: {printable(text)}", markup=False)


def _report(result: ClassResult, as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        table = Table("student", "host", "instance", "state", "detail", "seconds", title=title)
        for column in table.columns:
            column.overflow = "fold"
        for o in result.students:
            table.add_row(Text(o.student), Text(o.host or "-"), Text(o.instance),
                          Text(o.state, style="green" if o.ok else "bold red"), Text(o.detail), f"{o.seconds:.0f}")
        out.print(table)
        for h in result.hosts:
            out.print(f"{h.host}: {h.detail}", markup=False)
    if not result.ok:
        raise exit_with(ExitCode.FAILED)


TimeoutOpt = Annotated[float, typer.Option(help="Seconds each node may take to become ready (each host's `lab up`).")]


@class_app.command("up")
@reports_mistakes
def up(lab: LabArg, roster: RosterOpt, hosts: HostsOpt,
       accel: Annotated[str, typer.Option("--accel", help="auto (each host uses KVM where it really works), kvm or tcg.")] = "auto",
       var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE for every student's instance (repeatable).")] = None,
       timeout: TimeoutOpt = 900, as_json: JsonOpt = False) -> None:
    """Deploy every student's instance on the student's host, by that host's own hyperlab: the lab
    travels once (by content hash), golden images a host lacks are copied from here (or built there),
    then each host runs `lab up` for its students, `jobs` at once. A host that fails is reported
    and the others finish; a rerun converges."""
    if accel not in ("auto", "kvm", "tcg"):
        raise UsageError(f"--accel must be auto, kvm or tcg, not {printable(accel)!r}")
    if not 1 <= timeout <= 24 * 3600:
        raise UsageError(f"--timeout must be 1 to 86400 seconds, not {timeout:g}")
    loaded, class_roster, inventory = _inputs(lab, roster, hosts)
    parse_overrides(var or [], loaded.lab.variables)  # a mistake here contacts no host
    result = class_up(loaded, class_roster.entries, inventory, make_bundle(loaded), ImageStore(), accel=accel,
                      variables=var or [], timeout=timeout, progress=_progress)
    _report(result, as_json, f"lab class up {loaded.lab.id}")


@class_app.command("status")
@reports_mistakes
def status(lab: LabArg, roster: RosterOpt, hosts: HostsOpt, as_json: JsonOpt = False) -> None:
    """Each student's instance as its host sees it: ready, not ready (which node), not deployed."""
    loaded, class_roster, inventory = _inputs(lab, roster, hosts)
    _report(class_status(class_roster.entries, inventory, make_bundle(loaded), _progress), as_json,
            f"lab class status {loaded.lab.id}")


@class_app.command("down")
@reports_mistakes
def down(lab: LabArg, roster: RosterOpt, hosts: HostsOpt, as_json: JsonOpt = False) -> None:
    """Remove every student's instance from the student's host (exactly what it owns there)."""
    loaded, class_roster, inventory = _inputs(lab, roster, hosts)
    _report(class_down(class_roster.entries, inventory, make_bundle(loaded), _progress), as_json,
            f"lab class down {loaded.lab.id}")


@class_app.command("check")
@reports_mistakes
def check(lab: LabArg, roster: RosterOpt, hosts: HostsOpt, as_json: JsonOpt = False) -> None:
    """Run every student's checkers on the student's host and show each one's score (no gradebook:
    `lab grade --roster ... --hosts ...` writes that). Exit 0 only when every student passes."""
    loaded, class_roster, inventory = _inputs(lab, roster, hosts)
    result, documents = check_on_hosts(loaded, class_roster.entries, inventory, _progress)
    if as_json:
        print(json.dumps({"students": [{"student": e.student, "host": e.host, "instance": e.instance,
                                        "score": d.score, "max": d.max, "passed": d.passed, "error": d.first_error() or None,
                                        "steps": {s.id: s.status.value for s in d.steps}}
                                       for e, d in zip(class_roster.entries, documents)]}, indent=2, ensure_ascii=False))
    else:
        table = Table("student", "host", "instance", "result", title=f"lab class check {loaded.lab.id}")
        for column in table.columns:
            column.overflow = "fold"
        for e, d in zip(class_roster.entries, documents):
            table.add_row(Text(e.student), Text(e.host or "-"), Text(e.instance),
                          Text(summary(d), style="green" if d.passed else "" if d.checked else "bold yellow"))
        out.print(table)
    if not all(d.passed for d in documents):
        raise exit_with(ExitCode.FAILED)


# ------------------------------------------------------------------------------- the host's side


def host_side(func: F) -> F:
    """What fails on the host's side (no room, no permission: the `ssh:` user is not root) is one
    line on stderr and exit 1; the instructor's hyperlab shows that line."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (BundleError, ImageError, EvidenceError) as exc:
            err.print(f"error: {printable(str(exc))}", markup=False)
        except OSError as exc:
            err.print(f"error: {printable(exc.strerror or str(exc))}: {printable(str(exc.filename or ''))} (is the ssh user "
                      "root on this host?)", markup=False)
        raise exit_with(ExitCode.FAILED)

    return wrapper  # type: ignore[return-value]


@host_app.command("hello")
@host_side
def host_hello() -> None:
    """This host's hyperlab (version and code), and the lab bundles and golden images it holds."""
    print(json.dumps(hello_here(ImageStore()).to_json()))


@host_app.command("receive-lab")
@host_side
def host_receive_lab(bundle: Annotated[str, typer.Argument(help="The bundle's content hash.")]) -> None:
    """Keep the lab bundle on stdin (a tar) under its hash, once it hashes to it."""
    print(receive(bundle, sys.stdin.buffer))


@host_app.command("receive-image")
@host_side
def host_receive_image(name: str, sha256: str) -> None:
    """Install the golden image on stdin (a tar: manifest, disk, kernel, initrd) once it checks out."""
    transfer.receive(ImageStore(), name, sha256, sys.stdin.buffer)


@host_app.command("check")
@reports_mistakes
@host_side
def host_check(lab: LabArg, instance: Annotated[str, typer.Option("--instance")]) -> None:
    """Run the lab's checkers against one instance here; print the run document (JSON)."""
    instance = check_instance(instance)
    loaded = deployable(load_lab(lab))
    with tempfile.TemporaryDirectory(prefix="hyperlab-class-check-") as scratch:
        document = run_checks(loaded, instance, Path(scratch) / "evidence.json")
    print(json.dumps(document.to_json(), ensure_ascii=False))
