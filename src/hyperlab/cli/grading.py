"""`lab check`, `lab grade` and `lab solve`: the student's and the instructor's views of the checkers.

Exit codes: 0 every step passes (check) / the gradebook was written (grade) / the evidence verifies
(grade --verify); 1 otherwise; 2 a user mistake.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from hyperlab.cli.app import (ExitCode, InstanceOpt, LabArg, Session, app, check_instance, err, exit_with, host_errors,
                              deployable, out, output_file, reports_mistakes)
from hyperlab.core.errors import LabError, UsageError, printable
from hyperlab.core.inventory import LoadedInventory, load_inventory
from hyperlab.core.load import load_lab
from hyperlab.core.model import check_uri
from hyperlab.core.paths import output_folder
from hyperlab.core.steps import unknown_step
from hyperlab.grading import evidence
from hyperlab.grading.document import RunDocument
from hyperlab.grading.outcome import Status
from hyperlab.grading.remote import live_domains_there
from hyperlab.grading.runner import grade_roster
from hyperlab.grading.runner import run_checks
from hyperlab.grading.target import Instance, Recorder
from hyperlab.core.model import CHANNELS
from hyperlab.core.model import DEFAULT_URI
from hyperlab.host.facts import host_plan
from hyperlab.ops.solve import solve as solve_steps

STYLES = {Status.PASS: "green", Status.FAIL: "bold red", Status.BLOCKED: "dim", Status.ERROR: "bold yellow"}
StepOpt = Annotated[list[str] | None, typer.Option("--step", help="Only this step (and the steps it requires); repeatable.")]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="Instructor key for signing (default /var/lib/hyperlab/grading.key).")]


def check_json(document: RunDocument) -> dict[str, Any]:
    """What `lab check --json` prints: the documented fields, without the evidence."""
    full = document.to_json()
    return {"lab": full["lab"], "instance": full["instance"], "score": full["score"], "max": full["max"],
            "error": full["error"],
            "steps": [{k: s[k] for k in ("id", "status", "points", "score", "observed", "hint")} for s in full["steps"]]}


def check_table(document: RunDocument, language: str = "en") -> Table:
    table = Table("step", "title", "status", "points", title=f"{document.lab} / {document.instance}",
                  caption=f"score {document.score:g} / {document.max}")
    for column in table.columns:
        column.overflow = "fold"
    for step in document.steps:
        title: Any = Text(step.title_in(language))
        if step.status is not Status.PASS:
            parts: list[Any] = [title]
            if step.observed:
                parts.append(Text("observed: " + step.observed, style="red" if step.status is Status.FAIL else "yellow"))
            if step.hint and step.status in (Status.FAIL, Status.BLOCKED):
                parts.append(Text("hint: " + step.hint_in(language), style="cyan"))
            title = Group(*parts)
        table.add_row(Text(step.id), title, Text(step.status, style=STYLES[step.status]),
                      Text(f"{step.score:g}/{step.points}"))
    return table


@app.command("check")
@reports_mistakes
def check(lab: LabArg, instance: InstanceOpt = "default", step: StepOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
          channel: Annotated[str | None, typer.Option(help="agent, ssh or winrm (default: each node's own).")] = None,
          uri: Annotated[str, typer.Option(help="libvirt URI of the lab's host.")] = DEFAULT_URI,
          evidence_file: Annotated[Path | None, typer.Option("--evidence", help="Also keep the signed evidence file here.")] = None,
          language: Annotated[str, typer.Option("--lang", help="ko or en: language of titles and hints.")] = "en",
          key: KeyOpt = None) -> None:
    """Check your work: each step PASS, FAIL (with what was observed and a hint), BLOCKED or ERROR.
    Exit 0 only when every step passes."""
    name = check_instance(instance)
    try:
        check_uri(uri)
    except ValueError as exc:
        raise UsageError(f"--uri: {exc}") from None
    if evidence_file is not None:
        output_file(evidence_file, "--evidence")
    _usable_key(key)
    if channel is not None and channel not in CHANNELS:
        raise UsageError(f"--channel must be {', '.join(CHANNELS[:-1])} or {CHANNELS[-1]}, not {channel!r}")
    if language not in ("ko", "en"):
        raise UsageError(f"--lang must be ko or en, not {language!r}")
    loaded = deployable(load_lab(lab))
    problem = unknown_step(loaded.lab, step or [])
    if problem:
        raise UsageError(problem)
    with tempfile.TemporaryDirectory(prefix="hyperlab-check-") as scratch:
        path = evidence_file or Path(scratch) / "evidence.json"
        document = run_checks(loaded, name, path, uri=uri, channel=channel, steps=step, key=str(key) if key else None)
    if as_json:
        print(json.dumps(check_json(document), ensure_ascii=False, indent=2))
    elif document.error:
        err.print(f"error: {document.error}", markup=False)
    else:
        out.print(check_table(document, language))
    if not document.passed:
        raise exit_with(ExitCode.FAILED)


@app.command("grade")
@reports_mistakes
def grade(lab: Annotated[str | None, typer.Argument(help="Lab id or lab.yaml path.")] = None,
          roster: Annotated[Path | None, typer.Option(help="CSV: student,instance[,uri][,channel][,host].")] = None,
          hosts: Annotated[Path | None, typer.Option("--hosts", help="The class's hosts file: each student of a roster "
                                                     "with a host column is checked on that host.")] = None,
          jobs: Annotated[int, typer.Option("-j", "--jobs", help="Students checked at once.")] = 4,
          out_dir: Annotated[Path, typer.Option("--out", help="Folder for grades.csv, junit.xml, report.html, evidence/.")] = Path("grades"),
          verify: Annotated[Path | None, typer.Option(help="Check a signed evidence file instead of grading.")] = None,
          key: KeyOpt = None) -> None:
    """Grade a class: one isolated checker run per student of the roster, in parallel, into a gradebook.
    With --verify FILE: check that an evidence file is unchanged and bound to the student's domains."""
    if verify is not None:
        if roster is not None:
            raise UsageError("--verify checks one evidence file; it does not take --roster")
        _verify(verify, key, load_inventory(hosts) if hosts is not None else None)
        return
    if lab is None or roster is None:
        raise UsageError("give the lab and its roster: lab grade LAB --roster roster.csv (or --verify FILE)")
    output_folder(out_dir, "--out")
    _usable_key(key)
    loaded = deployable(load_lab(lab))
    # the roster and the hosts file are known good before the --out folder is made
    documents = grade_roster(loaded, roster, hosts, out_dir, jobs=jobs, key=str(key) if key else None,
                             progress=lambda line: err.print(printable(line), markup=False))
    out.print(f"gradebook for {len(documents)} student(s): {out_dir / 'grades.csv'}, {out_dir / 'junit.xml'}, "
              f"{out_dir / 'report.html'}; signed evidence in {out_dir / 'evidence'}/", markup=False)


def _usable_key(key: Path | None) -> None:
    """A signing key that is there must be a key: said before any check runs, not by the checker
    run at its end (where it would be a traceback, and no JSON under --json)."""
    path = evidence.key_path(key)
    if path.exists() or path.is_symlink():
        try:
            evidence.load_key(path, create=False)
        except evidence.EvidenceError as exc:
            raise UsageError(f"--key: {exc}") from None


def _verify(path: Path, key: Path | None, inventory: LoadedInventory | None) -> None:
    try:
        data = evidence.read(path)
        secret = evidence.load_key(evidence.key_path(key), create=False)
    except evidence.EvidenceError as exc:
        raise UsageError(str(exc)) from None

    def live(document: RunDocument) -> dict[str, str] | None:
        if not document.class_host:
            return _live_domains(document)
        if inventory is None:
            err.print(f"note: taken on class host {document.class_host}; give --hosts hosts.yaml to compare with the "
                      "domains deployed there", markup=False)
            return None
        return live_domains_there(inventory, document)

    verdict = evidence.verify(data, secret, live)
    for line in verdict.lines:
        (out if verdict.ok else err).print(("ok: " if verdict.ok else "refused: ") + line, markup=False)
    if not verdict.ok:
        raise exit_with(ExitCode.FAILED)


def _live_domains(document: RunDocument) -> dict[str, str] | None:
    """The UUIDs of the student's domains as deployed now, or None when they cannot be looked at.
    Asked only once the evidence's signature holds: the lab file it names is then the grader's own."""
    lab_file = Path(document.lab_file)
    try:
        loaded = load_lab(str(lab_file) if lab_file.is_file() else document.lab)
        plan = host_plan(loaded, check_instance(document.instance))
    except (LabError, UsageError):
        return None
    instance = Instance(loaded, plan, document.uri or DEFAULT_URI, None, Recorder())
    try:
        if instance.missing() is not None:
            return None
        return instance.domain_uuids()
    finally:
        instance.close()


@app.command("solve")
@reports_mistakes
@host_errors
def solve(lab: LabArg, instance: InstanceOpt = "default", step: StepOpt = None) -> None:
    """Run the reference solutions (of one step and what it requires, or all) through the guest agent."""
    session = Session(lab, instance)
    with session.changing("solve"):
        unsolved = solve_steps(session.conn, session.loaded, session.plan, step, session.progress)
    for step_id in unsolved:
        err.print(f"warning: step {step_id} has no reference solution in lab.yaml", markup=False)
    out.print(f"solved {session.plan.lab} / {session.plan.instance}; see `lab check {session.plan.lab}"
              f"{'' if session.plan.instance == 'default' else ' --instance ' + session.plan.instance}`", markup=False)
