"""Running checkers: one pytest process per instance, so one broken lab cannot spoil another's grade.

`lab check` runs one; `lab grade` (and `pytest checkers/<lab> --roster ...`) runs one per student
of a roster, several at once, and writes the gradebook. Each run writes its own signed evidence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hyperlab.core.errors import UsageError, display_path
from hyperlab.host.files import write_atomic
from hyperlab.grading.evidence import key_path, load_key, sign
from hyperlab.grading.gradebook import grades_csv, junit_xml, report_html
from hyperlab.grading.roster import Entry
from hyperlab.core.load import LoadedLab
from hyperlab.host.conn import DEFAULT_URI

RUN_TIMEOUT = 3600  # seconds for one student's whole checker run


def checkers_dir(loaded: LoadedLab) -> Path:
    folder = (loaded.folder.parent.parent / "checkers" / loaded.lab.id).resolve()
    if not any(folder.glob("test_*.py")):
        raise UsageError(f"lab {loaded.lab.id} has no checkers yet (expected test_*.py in {display_path(folder)})")
    return folder


def run_checks(loaded: LoadedLab, instance: str, evidence: Path, *, uri: str = DEFAULT_URI, channel: str | None = None,
               steps: list[str] | None = None, student: str | None = None, key: str | None = None,
               timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """Run the lab's checkers against one instance in a pytest process; return its result document."""
    folder = checkers_dir(loaded)
    evidence = evidence.resolve()  # pytest runs in the checkers' folder
    evidence.parent.mkdir(parents=True, exist_ok=True)
    evidence.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", str(folder), "-p", "hyperlab.grading.plugin", "-p", "no:cacheprovider",
               "-o", "addopts=", "--import-mode=importlib", "-q", "--lab", loaded.lab.id, "--instance", instance, "--uri", uri,
               "--evidence", str(evidence)]
    command += ["--channel", channel] if channel else []
    command += [arg for step in steps or [] for arg in ("--step", step)]
    command += ["--student", student] if student else []
    command += ["--key", key] if key else []
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=folder)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired:
        output, code = "", None
    if evidence.exists():
        return dict(json.loads(evidence.read_text()))
    if code is None:
        why = f"the checker run took longer than {timeout:.0f}s and was stopped"
    else:
        tail = " | ".join(line for line in output.strip().splitlines()[-5:] if line.strip())
        why = f"the checker run ended without a result (pytest exit code {code}): {tail}"
    document = failed_run(loaded, instance, uri, student, why)
    write_atomic(evidence, json.dumps(sign(document, load_key(key_path(key), create=True)), ensure_ascii=False, indent=1))
    return document


def failed_run(loaded: LoadedLab, instance: str, uri: str, student: str | None, why: str) -> dict[str, Any]:
    from hyperlab.grading.plugin import LabRun

    return LabRun(loaded, error=why).document(student, instance, uri)


def grade(loaded: LoadedLab, entries: list[Entry], out: Path, *, jobs: int = 4, key: str | None = None,
          progress: Callable[[str], None] = lambda _line: None) -> list[dict[str, Any]]:
    """Check every student's instance (`jobs` at once) and write the gradebook into `out`."""
    checkers_dir(loaded)  # a lab without checkers is refused before anything runs
    if jobs < 1:
        raise UsageError(f"-j must be at least 1, not {jobs}")
    load_key(key_path(key), create=True)  # made once here, not raced by the parallel runs
    (out / "evidence").mkdir(parents=True, exist_ok=True)

    def one(entry: Entry) -> dict[str, Any]:
        document = run_checks(loaded, entry.instance, out / "evidence" / f"{entry.slug}.json", uri=entry.uri,
                              channel=entry.channel, student=entry.student, key=key)
        progress(f"{entry.student}: {summary(document)}")
        return document

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        documents = list(pool.map(one, entries))
    from hyperlab.grading.target import now_utc

    write_atomic(out / "grades.csv", grades_csv(loaded.lab, documents))
    write_atomic(out / "junit.xml", junit_xml(loaded.lab, documents))
    write_atomic(out / "report.html", report_html(loaded.lab, documents, now_utc()))
    return documents


def summary(document: dict[str, Any]) -> str:
    from hyperlab.grading.gradebook import first_error, total_cell

    counts = {s: sum(step["status"] == s for step in document["steps"]) for s in ("PASS", "FAIL", "BLOCKED", "ERROR")}
    text = f"{total_cell(document)}/{document['max']} (" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ")"
    error = first_error(document)
    return text + (f"; {error}" if error else "")


def grade_from_pytest(config: Any) -> int:
    """`pytest checkers/<lab> --roster FILE`: the same class run as `lab grade`."""
    from hyperlab.core.errors import LabError
    from hyperlab.grading.plugin import checker_lab
    from hyperlab.grading.roster import read_roster
    from hyperlab.core.load import load_lab

    labs = {found for arg in config.args if (found := checker_lab(Path(arg).resolve() / "_")) is not None}
    only = config.getoption("hl_lab")
    if only:
        labs = {found for found in labs if found[0] == only}
    if len(labs) != 1:
        print("error: --roster grades one lab: give its checkers folder, e.g. pytest checkers/chapter-2-linux --roster roster.csv",
              file=sys.stderr)
        return 4
    lab_id, root = labs.pop()
    try:
        loaded = load_lab(lab_id, root)
        entries = read_roster(Path(config.getoption("hl_roster")))
        out = Path(config.getoption("hl_out"))
        grade(loaded, entries, out, jobs=config.getoption("hl_jobs"), key=config.getoption("hl_key"),
              progress=lambda line: print(line, flush=True))
    except LabError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 4
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    print(f"gradebook: {out / 'grades.csv'}, {out / 'junit.xml'}, {out / 'report.html'}, evidence in {out / 'evidence'}")
    return 0
