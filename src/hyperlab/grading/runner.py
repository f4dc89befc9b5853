"""Running checkers: one pytest process per instance, so one broken lab cannot spoil another's grade.

`lab check` runs one; `lab grade` (and `pytest checkers/<lab> --roster ...`) runs one per student
of a roster, several at once, and writes the gradebook. Each run writes its own signed evidence,
and the result is believed only once that signature holds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hyperlab.core.errors import LabError, UsageError, display_path, printable
from hyperlab.core.fanout import fan_out
from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.core.paths import output_folder
from hyperlab.grading import evidence
from hyperlab.grading.discovery import checkers_dir, labs_under
from hyperlab.grading.document import RunDocument, now_utc
from hyperlab.grading.remote import check_on_hosts
from hyperlab.grading.gradebook import grades_csv, junit_xml, report_html, total_cell
from hyperlab.core.inventory import LoadedInventory, load_inventory
from hyperlab.core.roster import Entry, hosts_problems, load_roster
from hyperlab.core.model import DEFAULT_URI
from hyperlab.host.files import write_atomic
from hyperlab.remote.bundle import make_bundle

RUN_TIMEOUT = 3600  # seconds for one student's whole checker run


def run_checks(loaded: LoadedLab, instance: str, evidence_path: Path, *, uri: str = DEFAULT_URI,
               channel: str | None = None, steps: list[str] | None = None, student: str | None = None,
               key: str | None = None, timeout: float = RUN_TIMEOUT) -> RunDocument:
    """Run the lab's checkers against one instance in a pytest process; return its result."""
    folder = checkers_dir(loaded)
    evidence_path = evidence_path.resolve()  # pytest runs in the checkers' folder
    evidence_path.parent.mkdir(parents=True, exist_ok=True)
    evidence_path.unlink(missing_ok=True)
    secret = evidence.load_key(evidence.key_path(key), create=True)
    command = [sys.executable, "-m", "pytest", str(folder), "-p", "hyperlab.grading.plugin", "-p", "no:cacheprovider",
               "-o", "addopts=", "--import-mode=importlib", "-q", "--lab", loaded.lab.id, "--instance", instance, "--uri", uri,
               "--evidence", str(evidence_path)]
    command += ["--channel", channel] if channel else []
    command += [arg for step in steps or [] for arg in ("--step", step)]
    command += ["--student", student] if student else []
    command += ["--key", key] if key else []
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=folder)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired:
        output, code = "", None
    if evidence_path.exists():
        try:
            return evidence.believe(evidence.read(evidence_path), secret)
        except evidence.EvidenceError as exc:
            why = f"the checker run's result does not verify ({exc}); it is not used"
    elif code is None:
        why = f"the checker run took longer than {timeout:.0f}s and was stopped"
    else:
        tail = " | ".join(line for line in output.strip().splitlines()[-5:] if line.strip())
        why = f"the checker run ended without a result (pytest exit code {code}): {tail}"
    return evidence.write(evidence_path, RunDocument.failed(loaded, instance, uri, student, why), secret)


def grade(loaded: LoadedLab, entries: list[Entry], out: Path, *, jobs: int = 4, key: str | None = None,
          progress: Callable[[str], None] = lambda _line: None, inventory: LoadedInventory | None = None,
          class_roster: bool = False) -> list[RunDocument]:
    """Check every student's instance and write the gradebook into `out`. A student with a host (or
    every student of a class roster, `class_roster`) is checked on that host of `inventory`, `jobs`
    per host at once as the hosts file says; the others here, `jobs` at once."""
    checkers_dir(loaded)  # a lab without checkers is refused before anything runs
    if jobs < 1 or jobs > 64:
        raise UsageError(f"-j must be 1 to 64, not {jobs}")
    hosted = [i for i, entry in enumerate(entries) if class_roster or entry.host is not None]
    if hosted and inventory is None:
        first = entries[hosted[0]]
        raise UsageError(f"the roster places students on hosts (line {first.line}: {first.student} on "
                         f"{first.host or 'no host yet'}); give the hosts file: --hosts hosts.yaml")
    bundle = make_bundle(loaded) if hosted else None  # a lab that cannot travel is refused before anything runs
    output_folder(out, "--out", below=("evidence",))
    try:
        secret = evidence.load_key(evidence.key_path(key), create=True)  # made once here, not raced by the parallel runs
    except evidence.EvidenceError as exc:
        raise UsageError(f"--key: {exc}") from None
    (out / "evidence").mkdir(parents=True, exist_ok=True)

    def path_of(entry: Entry) -> Path:
        return out / "evidence" / f"{entry.slug}.json"

    def one(entry: Entry) -> RunDocument:
        document = run_checks(loaded, entry.instance, path_of(entry), uri=entry.uri,
                              channel=entry.channel, student=entry.student, key=key)
        progress(f"{entry.student}: {summary(document)}")
        return document

    documents: dict[int, RunDocument] = {}
    local = [i for i in range(len(entries)) if i not in set(hosted)]
    if hosted and inventory is not None and bundle is not None:
        _, there = check_on_hosts(loaded, [entries[i] for i in hosted], inventory,
                                  lambda host, text: progress(f"{host}: {text}"), bundle)
        for i, document in zip(hosted, there):
            documents[i] = evidence.write(path_of(entries[i]), document, secret)
            progress(f"{entries[i].student}: {summary(documents[i])}")
    for i, document in zip(local, fan_out(one, [entries[i] for i in local], workers=jobs)):
        documents[i] = document
    ordered = [documents[i] for i in range(len(entries))]
    write_atomic(out / "grades.csv", grades_csv(loaded.lab, ordered))
    write_atomic(out / "junit.xml", junit_xml(loaded.lab, ordered))
    write_atomic(out / "report.html", report_html(loaded.lab, ordered, now_utc()))
    return ordered


def grade_roster(loaded: LoadedLab, roster_path: Path, hosts_path: Path | None, out: Path, *, jobs: int = 4,
                 key: str | None = None, progress: Callable[[str], None] = lambda _line: None) -> list[RunDocument]:
    """`lab grade --roster FILE [--hosts FILE]` and `pytest --roster FILE [--hosts-file FILE]`: the roster
    and the hosts file are read and checked against each other before anything is made or contacted."""
    roster = load_roster(roster_path)
    inventory = None
    if hosts_path is not None:
        inventory = load_inventory(hosts_path)
        if not roster.has_hosts:
            raise UsageError(f"{display_path(roster_path)} has no host column, so the hosts file places nobody; "
                             "`lab class plan` writes it (or leave the hosts file out)")
        problems = hosts_problems(roster, display_path(roster_path), inventory.names, display_path(hosts_path))
        if problems:
            raise LabError(problems)
    return grade(loaded, roster.entries, out, jobs=jobs, key=key, progress=progress, inventory=inventory,
                 class_roster=roster.has_hosts)


def summary(document: RunDocument) -> str:
    counts = document.counts()
    text = f"{total_cell(document)}/{document.max} (" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ")"
    error = document.first_error()
    return text + (f"; {error}" if error else "")


def grade_from_pytest(config: Any) -> int:
    """`pytest checkers/<lab> --roster FILE`: the same class run as `lab grade`."""
    labs = {found for arg in config.args for found in labs_under(Path(arg))}
    only = config.getoption("hl_lab")
    if only:
        labs = {found for found in labs if found[0] == only}
    if len(labs) != 1:
        print("error: --roster grades one lab: give its checkers folder, e.g. pytest checkers/chapter-2-linux --roster "
              "roster.csv (or add --lab LAB)", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    lab_id, root = labs.pop()
    try:
        loaded = load_lab(lab_id, root)
        hosts = config.getoption("hl_hosts")
        out = Path(config.getoption("hl_out"))
        grade_roster(loaded, Path(config.getoption("hl_roster")), Path(hosts) if hosts else None, out,
                     jobs=config.getoption("hl_jobs"), key=config.getoption("hl_key"),
                     progress=lambda line: print(printable(line), flush=True))
    except LabError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    print(f"gradebook: {out / 'grades.csv'}, {out / 'junit.xml'}, {out / 'report.html'}, evidence in {out / 'evidence'}")
    return int(pytest.ExitCode.OK)
