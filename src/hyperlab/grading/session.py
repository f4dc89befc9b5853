"""The state of one pytest session over checkers: which labs and instances it checks, and what it found.

A *target* is one instance of one lab. `--instance NAME` makes every lab's target that instance
(what `lab check` and `lab grade` ask for, one process per instance). Without it, every lab is checked
against each of its instances deployed at `--uri`: its checkers are parametrized by instance
(`test_x[kim]`). A lab with none deployed is reported in one line and its checkers are skipped (the
run goes on with the other labs), unless none of its checkers uses a lab fixture (`lab`, `node`,
`host`, `probe`): those need no deployed lab and run once.

For each target the session keeps the checks' results, in `requires` order, with BLOCKED for a
check whose required step did not pass; the result document is made once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from hyperlab.core.errors import LabError
from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.core.model import Step, check_id, check_uri
from hyperlab.core.steps import closure, order, unknown_step
from hyperlab.grading.discovery import checker_lab
from hyperlab.grading.document import RunDocument, now_utc
from hyperlab.grading.evidence import key_path, load_key
from hyperlab.grading.evidence import write as write_evidence
from hyperlab.grading.outcome import CheckResult, Status, fold, step_status
from hyperlab.grading.target import Instance, Recorder
from hyperlab.grading.unreachable import CheckError, unreachable
from hyperlab.host.conn import HostProblem, connect, deployed_instances, lookup_domain
from hyperlab.host.facts import host_plan

LAB_FIXTURES = {"lab", "node", "host", "probe"}
INSTANCE_PARAM = "hl_instance"  # the parameter that carries a discovered instance's name
DEFAULT_INSTANCE = "default"
BLOCKED_KEY = pytest.StashKey[str]()
LEFT_OUT_KEY = pytest.StashKey[str]()  # why a discovered lab's checker is skipped: no instance of it is deployed


@dataclass(frozen=True)
class ItemInfo:
    lab: str
    step: str
    weight: float
    name: str
    instance: str


@dataclass
class LabRun:
    """One target: a lab's checkers against one instance."""

    loaded: LoadedLab
    instance_name: str
    instance: Instance | None = None
    checks: list[CheckResult] = field(default_factory=list)
    selected: set[str] | None = None  # step ids of this run, None = all
    error: str | None = None
    started: str = field(default_factory=now_utc)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.loaded.lab.steps if s.id == step_id)

    def document(self, student: str | None, uri: str) -> RunDocument:
        """The run's result: what `lab check --json` prints and what the evidence file signs."""
        domains: dict[str, str] = {}
        if self.instance is not None and self.error is None:
            try:
                domains = self.instance.domain_uuids()
            except Exception as exc:  # noqa: BLE001 - the document is still worth writing
                if not unreachable(exc):
                    raise
        steps = fold(self.loaded.lab, self.checks, self.selected)
        return RunDocument.of(self.loaded, steps, instance=self.instance_name, uri=uri, student=student,
                              error=self.error, domains=domains, started=self.started)


class Grading:
    def __init__(self, config: pytest.Config) -> None:
        self.recorder = Recorder()
        self.labs: dict[str, LoadedLab] = {}
        self.runs: dict[tuple[str, str], LabRun] = {}
        self.items: dict[str, ItemInfo] = {}
        self.left_out: list[str] = []  # one line per lab that was not checked, and why
        opt = config.getoption
        self.only_lab: str | None = opt("hl_lab")
        self.explicit: str | None = opt("hl_instance")
        self.uri: str = opt("hl_uri")
        self.channel: str | None = opt("hl_channel")
        self.steps: list[str] = opt("hl_step") or []
        self.evidence: str | None = opt("hl_evidence")
        self.key: str | None = opt("hl_key")
        self.student: str | None = opt("hl_student")
        self._discovered: dict[str, list[str]] = {}
        self._why_none: dict[str, str] = {}  # lab -> why discovery found no instance
        self._documents: dict[tuple[str, str], RunDocument] | None = None
        self._unchecked: set[str] = set()
        if self.explicit is not None:
            try:
                check_id(self.explicit)
            except ValueError as exc:
                raise pytest.UsageError(f"--instance: {exc}") from None
        try:
            if self.uri is not None:  # None only where a page of the docs reads the plugin's markers
                check_uri(self.uri)
        except ValueError as exc:
            raise pytest.UsageError(f"--uri: {exc}") from None

    # ------------------------------------------------------------------ collection

    def lab(self, lab_id: str, root: Path) -> LoadedLab:
        if lab_id not in self.labs:
            try:
                self.labs[lab_id] = load_lab(lab_id, root)
            except LabError as exc:
                raise pytest.UsageError("\n".join(str(p) for p in exc.problems)) from None
        return self.labs[lab_id]

    def instances_for(self, metafunc: pytest.Metafunc) -> list[str] | None:
        """The instances to parametrize a checker with (discovery mode only), or None: no parametrization."""
        found = checker_lab(Path(str(metafunc.definition.path)))
        if found is None or self.explicit is not None:
            return None
        lab_id = found[0]
        if self.only_lab is not None and lab_id != self.only_lab:
            return None
        if lab_id not in self._discovered:
            self._discovered[lab_id] = self._discover(lab_id)
        return self._discovered[lab_id] or None

    def _discover(self, lab_id: str) -> list[str]:
        try:
            conn = connect(self.uri)
        except HostProblem as exc:
            self._why_none[lab_id] = f"not checked: {exc}"
            return []
        try:
            found = deployed_instances(conn, lab_id)
        finally:
            conn.close()
        if not found:
            self._why_none[lab_id] = (f"no instance is deployed at {self.uri}; start one with `lab up {lab_id}`, "
                                      "or name one with --instance")
        return found

    def collect(self, items: list[pytest.Item]) -> list[pytest.Item]:
        problems: list[str] = []
        for item in items:
            marker = item.get_closest_marker("step")
            found = checker_lab(item.path)
            if found is None:
                if marker is not None:
                    problems.append(f"{item.nodeid}: @pytest.mark.step is only for checkers in checkers/<lab>/")
                continue
            lab = self.lab(*found).lab
            if marker is None:
                problems.append(f"{item.nodeid}: a checker needs @pytest.mark.step(\"<step id>\"); "
                                f"steps of {lab.id}: {', '.join(s.id for s in lab.steps)}")
                continue
            problem = _marker_problem(marker, lab.id, [s.id for s in lab.steps])
            if problem:
                problems.append(f"{item.nodeid}: {problem}")
                continue
            self.items[item.nodeid] = ItemInfo(lab.id, marker.args[0], float(marker.kwargs.get("weight", 1)),
                                               _check_name(item), self._instance_of(item, lab.id))
        if problems:
            raise pytest.UsageError("\n".join(problems))
        if self.only_lab is not None and self.only_lab not in self.labs:
            raise pytest.UsageError(f"--lab {self.only_lab}: no checkers of that lab were collected "
                                    f"(they live in checkers/{self.only_lab}/)")
        fixtures = {info.lab for i in items if (info := self.items.get(i.nodeid)) is not None
                    and LAB_FIXTURES & set(getattr(i, "fixturenames", ()))}
        for lab_id in sorted(fixtures & set(self._why_none)):
            if self.only_lab is None or lab_id == self.only_lab:
                self.left_out.append(f"lab {lab_id}: {self._why_none[lab_id]}")
        self._unchecked = fixtures & set(self._why_none)
        selected: dict[str, set[str] | None] = {}
        for lab_id, loaded in self.labs.items():
            problem = unknown_step(loaded.lab, self.steps)
            if problem:
                raise pytest.UsageError(problem)
            selected[lab_id] = closure(loaded.lab, set(self.steps)) if self.steps else None
        keep = []
        for item in items:
            info = self.items.get(item.nodeid)
            if info is None:
                keep.append(item)
            elif info.lab in self._unchecked and self._wanted(info, selected[info.lab]):
                # collected and shown as skipped, so that the run goes on with the other labs
                item.stash[LEFT_OUT_KEY] = f"lab {info.lab}: {self._why_none[info.lab]}"
                item.add_marker(pytest.mark.skip(reason=item.stash[LEFT_OUT_KEY]))
                keep.append(item)
            elif self._wanted(info, selected[info.lab]):
                keep.append(item)
                if (info.lab, info.instance) not in self.runs:
                    self.runs[(info.lab, info.instance)] = LabRun(self.labs[info.lab], info.instance,
                                                                  selected=selected[info.lab])
        ranks = {lab_id: order(loaded.lab) for lab_id, loaded in self.labs.items()}
        position = {item.nodeid: i for i, item in enumerate(keep)}

        def rank(item: pytest.Item) -> tuple[str, str, int, int]:
            info = self.items.get(item.nodeid)
            if info is None:
                return ("", "", 0, position[item.nodeid])
            return (info.lab, info.instance, ranks[info.lab][info.step], position[item.nodeid])

        keep.sort(key=rank)
        return keep

    def _instance_of(self, item: pytest.Item, lab_id: str) -> str:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and INSTANCE_PARAM in callspec.params:
            return str(callspec.params[INSTANCE_PARAM])
        return self.explicit or DEFAULT_INSTANCE

    def _wanted(self, info: ItemInfo, selected: set[str] | None) -> bool:
        if self.only_lab is not None and info.lab != self.only_lab:
            return False
        return selected is None or info.step in selected

    def connect(self, items: list[pytest.Item]) -> None:
        """Reach every target whose checkers need a lab. When none can be reached, stop at once in one
        line per target; otherwise leave out the ones that cannot (a line each) and check the rest."""
        if self.evidence is not None and len(self.runs) != 1:
            raise pytest.UsageError("--evidence needs the checkers of exactly one lab and instance; "
                                    "add --lab and --instance")
        needing = {(info.lab, info.instance) for i in items if (info := self.items.get(i.nodeid)) is not None
                   and (info.lab, info.instance) in self.runs and LAB_FIXTURES & set(getattr(i, "fixturenames", ()))}
        failed = []
        for key in sorted(needing):
            run = self.runs[key]
            run.instance = Instance(run.loaded, host_plan(run.loaded, key[1]), self.uri, self.channel, self.recorder)
            run.error = run.instance.missing()
            if run.error is not None:
                failed.append(key)
        if failed and len(failed) == len(self.runs):
            self.finish()
            pytest.exit("\n".join(self.runs[key].error or "" for key in failed), returncode=pytest.ExitCode.INTERRUPTED)
        for key in failed:
            self.left_out.append(f"lab {key[0]}: not checked: {self.runs[key].error}")
            del self.runs[key]
        dropped = [i for i in items if (info := self.items.get(i.nodeid)) is not None
                   and (info.lab, info.instance) in failed]
        for item in dropped:
            items.remove(item)

    # --------------------------------------------------------------------- running

    def run_of(self, item: pytest.Item) -> LabRun | None:
        info = self.items.get(item.nodeid)
        return None if info is None else self.runs.get((info.lab, info.instance))

    def before(self, item: pytest.Item) -> None:
        info = self.items.get(item.nodeid)
        run = self.run_of(item)
        if info is None or run is None:
            return
        self.recorder.start()
        step = run.step(info.step)
        for req in step.requires:
            status = step_status([c for c in run.checks if c.step == req])
            if status is not None and status is not Status.PASS:
                item.stash[BLOCKED_KEY] = f"requires step {req}, which is {status}"
                pytest.skip(f"BLOCKED: {item.stash[BLOCKED_KEY]}")
        if run.instance is not None:
            stopped = _stopped_nodes(run.instance, step)
            if stopped:
                raise CheckError(f"cannot check: {stopped}; start the lab again with `lab up {info.lab}`")

    def report(self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
        if report.skipped and LEFT_OUT_KEY in item.stash:
            # one location for the whole lab, so that pytest's summary folds its checkers into one line
            report.longrepr = (str(item.path.parent), None, item.stash[LEFT_OUT_KEY])  # type: ignore[assignment]
            return
        info = self.items.get(item.nodeid)
        run = self.run_of(item)
        if info is None or run is None or call.when == "teardown" or getattr(item, "_hl_recorded", False):
            return
        status: Status | None = None
        message = ""
        exc = call.excinfo.value if call.excinfo is not None else None
        if report.skipped and BLOCKED_KEY in item.stash:
            status, message = Status.BLOCKED, item.stash[BLOCKED_KEY]
        elif report.skipped:
            status, message = Status.ERROR, f"not checked: {getattr(exc, 'msg', exc)}"
        elif report.failed and isinstance(exc, AssertionError) and call.when == "call":
            status, message = Status.FAIL, _assertion_text(exc)
        elif report.failed and exc is not None and unreachable(exc):
            status, message = Status.ERROR, f"could not check (not the student's fault): {exc}"
        elif report.failed and exc is not None:
            status, message = Status.ERROR, f"checker error (not the student's fault): {type(exc).__name__}: {exc}"
        elif report.passed and call.when == "call":
            status = Status.PASS
        if status is None:
            return
        item._hl_recorded = True  # type: ignore[attr-defined]
        run.checks.append(CheckResult(item.nodeid, info.name, info.step, info.weight, status, message, call.duration,
                                      list(self.recorder.entries)))
        report.hl_status = str(status)  # type: ignore[attr-defined]
        if status in (Status.FAIL, Status.BLOCKED) or (status is Status.ERROR and exc is not None and unreachable(exc)):
            report.longrepr = f"{status} [{info.step}] {message}"

    # ---------------------------------------------------------------------- ending

    def documents(self) -> dict[tuple[str, str], RunDocument]:
        """Each target's result, made once when the checks are over: the evidence file and the terminal
        summary show the same document (one read of the domain UUIDs, one finishing time)."""
        if self._documents is None:
            self._documents = {key: run.document(self.student, self.uri) for key, run in self.runs.items()}
        return self._documents

    def finish(self) -> None:
        if self.evidence is None or not self.runs:
            return
        [document] = self.documents().values()
        write_evidence(Path(self.evidence), document, load_key(key_path(self.key), create=True))

    def close(self) -> None:
        for run in self.runs.values():
            if run.instance is not None:
                run.instance.close()


def _marker_problem(marker: pytest.Mark, lab_id: str, step_ids: list[str]) -> str | None:
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        return "@pytest.mark.step takes one step id, e.g. @pytest.mark.step(\"nat\")"
    extra = set(marker.kwargs) - {"weight"}
    if extra:
        return f"@pytest.mark.step: unknown argument {sorted(extra)[0]!r} (points come from lab.yaml; only weight= is allowed)"
    weight = marker.kwargs.get("weight", 1)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
        return f"@pytest.mark.step: weight must be a positive number, not {weight!r}"
    if marker.args[0] not in step_ids:
        return f"unknown step {marker.args[0]!r}; steps of {lab_id}: {', '.join(step_ids)}"
    return None


def _check_name(item: pytest.Item) -> str:
    """The first line of the checker's docstring: what it checks, in words; else its name."""
    doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else item.name


def _assertion_text(exc: BaseException) -> str:
    """The checker's own message; pytest's rewritten `assert ... where ...` only when there is none."""
    text = str(exc).strip()
    head, _, _ = text.partition("\nassert ")
    if head.strip() and not head.startswith("assert "):
        return head.strip()
    return "\n".join(text.splitlines()[:6]) or "assertion failed"


def _stopped_nodes(instance: Instance, step: Step) -> str | None:
    """The step's nodes (from lab.yaml) that are not running: nothing can be checked on them."""
    names = {n.name for n in instance.plan.nodes}
    stopped = []
    for name in step.nodes:
        if name not in names:
            continue  # a nested guest: its host is what libvirt here knows about
        domain = lookup_domain(instance.conn(), instance.plan.node(name).domain)
        if domain is None:
            stopped.append(f"{name} is not deployed")
        elif domain.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            stopped.append(f"{name} is not running")
    return ", ".join(stopped) or None


def step_lines(document: RunDocument) -> list[str]:
    """A plain-text step table (pytest's summary; `lab check` draws a rich one from the same data)."""
    lines = []
    for step in document.steps:
        lines.append(f"{step.status:<8} {step.score:>6g}/{step.points:<4} {step.id}: {step.title_in('en')}")
        if step.status is not Status.PASS:
            for text in step.observed.splitlines()[:6]:
                lines.append(f"{'':22}observed: {text}")
            if step.hint:
                lines.append(f"{'':22}hint: {step.hint_in('en')}")
    lines.append(f"score {document.score:g} / {document.max}")
    return lines
