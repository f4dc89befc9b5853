"""`lab check`, `lab grade` and `lab solve`: the student's and the instructor's views of the checkers.

cli.py calls `register(app)`. Exit codes: 0 every step passes (check) / the gradebook was written
(grade) / the evidence verifies (grade --verify); 1 otherwise; 2 a user mistake.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
STYLES = {"PASS": "green", "FAIL": "bold red", "BLOCKED": "dim", "ERROR": "bold yellow"}
LabArg = Annotated[str, typer.Argument(help="Lab id or lab.yaml path.")]
InstanceOpt = Annotated[str, typer.Option("--instance", "-i", help="Instance name: one student's copy of the lab.")]
StepOpt = Annotated[list[str] | None, typer.Option("--step", help="Only this step (and the steps it requires); repeatable.")]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="Instructor key for signing (default /var/lib/hyperlab/grading.key).")]


def check_json(document: dict[str, Any]) -> dict[str, Any]:
    """What `lab check --json` prints: the documented fields, without the evidence."""
    return {"lab": document["lab"], "instance": document["instance"], "score": document["score"], "max": document["max"],
            "error": document.get("error"),
            "steps": [{k: s[k] for k in ("id", "status", "points", "score", "observed", "hint")} for s in document["steps"]]}


def check_table(document: dict[str, Any], language: str = "en") -> Table:
    table = Table("step", "title", "status", "points", title=f"{document['lab']} / {document['instance']}",
                  caption=f"score {document['score']:g} / {document['max']}")
    for column in table.columns:
        column.overflow = "fold"
    for step in document["steps"]:
        title: Any = Text(step["title"].get(language) or step["title"]["en"])
        if step["status"] != "PASS":
            parts: list[Any] = [title]
            if step["observed"]:
                parts.append(Text("observed: " + step["observed"], style="red" if step["status"] == "FAIL" else "yellow"))
            if step["hint"] and step["status"] in ("FAIL", "BLOCKED"):
                parts.append(Text("hint: " + (step["hint"].get(language) or step["hint"]["en"]), style="cyan"))
            title = Group(*parts)
        table.add_row(Text(step["id"]), title, Text(step["status"], style=STYLES[step["status"]]),
                      Text(f"{step['score']:g}/{step['points']}"))
    return table


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(lab: LabArg, instance: InstanceOpt = "default", step: StepOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
              channel: Annotated[str | None, typer.Option(help="agent, ssh or winrm (default: each node's own).")] = None,
              uri: Annotated[str, typer.Option(help="libvirt URI of the lab's host.")] = "qemu:///system",
              evidence: Annotated[Path | None, typer.Option(help="Also keep the signed evidence file here.")] = None,
              language: Annotated[str, typer.Option("--lang", help="ko or en: language of titles and hints.")] = "en",
              key: KeyOpt = None) -> None:
        """Check your work: each step PASS, FAIL (with what was observed and a hint), BLOCKED or ERROR.
        Exit 0 only when every step passes."""
        from hyperlab.cli.app import _instance, reports_mistakes

        reports_mistakes(_check)(lab, _instance(instance), step, as_json, channel, uri, evidence, language, key)

    @app.command("grade")
    def grade(lab: Annotated[str | None, typer.Argument(help="Lab id or lab.yaml path.")] = None,
              roster: Annotated[Path | None, typer.Option(help="CSV: student,instance[,uri][,channel].")] = None,
              jobs: Annotated[int, typer.Option("-j", "--jobs", help="Students checked at once.")] = 4,
              out_dir: Annotated[Path, typer.Option("--out", help="Folder for grades.csv, junit.xml, report.html, evidence/.")] = Path("grades"),
              verify: Annotated[Path | None, typer.Option(help="Check a signed evidence file instead of grading.")] = None,
              key: KeyOpt = None) -> None:
        """Grade a class: one isolated checker run per student of the roster, in parallel, into a gradebook.
        With --verify FILE: check that an evidence file is unchanged and bound to the student's domains."""
        from hyperlab.cli.app import reports_mistakes

        reports_mistakes(_grade)(lab, roster, jobs, out_dir, verify, key)

    @app.command("solve")
    def solve(lab: LabArg, instance: InstanceOpt = "default", step: StepOpt = None) -> None:
        """Run the reference solutions (of one step and what it requires, or all) through the guest agent."""
        from hyperlab.cli.app import _host_errors, reports_mistakes

        reports_mistakes(_host_errors(_solve))(lab, instance, step)


def _check(lab: str, instance: str, steps: list[str] | None, as_json: bool, channel: str | None, uri: str,
           evidence: Path | None, language: str, key: Path | None) -> None:
    from hyperlab.core.errors import UsageError
    from hyperlab.grading.outcome import unknown_step
    from hyperlab.grading.runner import run_checks
    from hyperlab.guest.base import CHANNELS
    from hyperlab.core.load import load_lab

    if channel is not None and channel not in CHANNELS:
        raise UsageError(f"--channel must be {', '.join(CHANNELS[:-1])} or {CHANNELS[-1]}, not {channel!r}")
    if language not in ("ko", "en"):
        raise UsageError(f"--lang must be ko or en, not {language!r}")
    loaded = load_lab(lab)
    problem = unknown_step(loaded.lab, steps or [])
    if problem:
        raise UsageError(problem)
    with tempfile.TemporaryDirectory(prefix="hyperlab-check-") as scratch:
        path = evidence or Path(scratch) / "evidence.json"
        document = run_checks(loaded, instance, path, uri=uri, channel=channel, steps=steps,
                              key=str(key) if key else None)
    if as_json:
        print(json.dumps(check_json(document), ensure_ascii=False, indent=2))
    else:
        if document.get("error"):
            err.print(f"error: {document['error']}", markup=False)
        else:
            out.print(check_table(document, language))
    if document.get("error") or any(s["status"] != "PASS" for s in document["steps"]):
        raise typer.Exit(1)


def _grade(lab: str | None, roster: Path | None, jobs: int, out_dir: Path, verify: Path | None, key: Path | None) -> None:
    from hyperlab.core.errors import UsageError

    if verify is not None:
        if roster is not None:
            raise UsageError("--verify checks one evidence file; it does not take --roster")
        _verify(verify, key)
        return
    if lab is None or roster is None:
        raise UsageError("give the lab and its roster: lab grade LAB --roster roster.csv (or --verify FILE)")
    from hyperlab.grading.roster import read_roster
    from hyperlab.grading.runner import grade
    from hyperlab.core.load import load_lab

    loaded = load_lab(lab)
    entries = read_roster(roster)
    documents = grade(loaded, entries, out_dir, jobs=jobs, key=str(key) if key else None,
                      progress=lambda line: err.print(line, markup=False))
    out.print(f"gradebook for {len(documents)} student(s): {out_dir / 'grades.csv'}, {out_dir / 'junit.xml'}, "
              f"{out_dir / 'report.html'}; signed evidence in {out_dir / 'evidence'}/", markup=False)


def _verify(path: Path, key: Path | None) -> None:
    from hyperlab.core.errors import UsageError
    from hyperlab.grading import evidence

    try:
        document = evidence.read(path)
        secret = evidence.load_key(evidence.key_path(key), create=False)
    except evidence.EvidenceError as exc:
        raise UsageError(str(exc)) from None
    verdict = evidence.verify(document, secret, _live_domains(document))
    for line in verdict.lines:
        (out if verdict.ok else err).print(("ok: " if verdict.ok else "refused: ") + line, markup=False)
    if not verdict.ok:
        raise typer.Exit(1)


def _live_domains(document: dict[str, Any]) -> dict[str, str] | None:
    """The UUIDs of the student's domains as deployed now, or None when they cannot be looked at."""
    from hyperlab.ops.deploy import host_plan
    from hyperlab.core.errors import LabError, UsageError
    from hyperlab.grading.target import Instance, Recorder
    from hyperlab.core.load import load_lab

    lab_file = Path(str(document.get("lab_file") or ""))
    try:
        loaded = load_lab(str(lab_file) if lab_file.is_file() else str(document["lab"]))
        plan = host_plan(loaded, str(document["instance"]))
    except (LabError, UsageError, ValueError, KeyError):
        return None
    instance = Instance(loaded, plan, str(document.get("uri") or "qemu:///system"), None, Recorder())
    try:
        if instance.missing() is not None:
            return None
        return instance.domain_uuids()
    finally:
        instance.close()


def _solve(lab: str, instance: str, steps: list[str] | None) -> None:
    from hyperlab.cli.app import _Session
    from hyperlab.ops.solve import solve

    session = _Session(lab, instance, "tcg")
    with session.changing("solve"):
        unsolved = solve(session.conn, session.loaded, session.plan, steps, session.progress)
    for step_id in unsolved:
        err.print(f"warning: step {step_id} has no reference solution in lab.yaml", markup=False)
    out.print(f"solved {session.plan.lab} / {session.plan.instance}; see `lab check {session.plan.lab}"
              f"{'' if session.plan.instance == 'default' else ' --instance ' + session.plan.instance}`", markup=False)

