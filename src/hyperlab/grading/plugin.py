"""The pytest plugin behind `pytest checkers/`, `lab check` and `lab grade`.

A checker is a test function in `checkers/<lab>/` marked `@pytest.mark.step("<id>")`. The plugin
ties it to the step in `labs/<lab>/lab.yaml` (title, points, requires, hint), runs the steps in
`requires` order, reports a check whose required step did not pass as BLOCKED instead of running
it, tells FAIL (the student's state is wrong) from ERROR (the check could not look), and folds the
checks into step results with partial credit. Tests outside `checkers/<lab>/` are left alone.

Options (group "hyperlab"): --lab, --instance, --uri, --channel, --step, --roster, --evidence,
--key, --student.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hyperlab.core.errors import LabError
from hyperlab.guest.base import CHANNELS
from hyperlab.grading.outcome import CheckResult, Status, closure, fold, order, step_status, unknown_step
from hyperlab.grading.target import CheckError, Instance, Node, Probe, Recorder, now_utc
from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.core.model import Step

TESTINFRA = "pytest11.testinfra"  # the entry point name of pytest-testinfra's plugin
LAB_FIXTURES = {"lab", "node", "host", "probe"}
NOT_DEPLOYED_EXIT = 2  # pytest's "interrupted": nothing was checked
BLOCKED_KEY = pytest.StashKey[str]()
STATE_KEY = pytest.StashKey["Grading"]()


def checker_lab(path: Path) -> tuple[str, Path] | None:
    """(lab id, checkout root) for a file under `<root>/checkers/<lab>/`, else None."""
    for folder in path.parents:
        if folder.parent.name == "checkers":
            return folder.name, folder.parent.parent
    return None


def unreachable(exc: BaseException) -> bool:
    """Exceptions that mean "could not look", as opposed to a wrong state or a checker bug."""
    import libvirt

    from hyperlab.guest.base import ChannelError
    from hyperlab.host.conn import HostProblem
    from hyperlab.probes import NetnsError

    return isinstance(exc, (ChannelError, CheckError, HostProblem, NetnsError, libvirt.libvirtError))


@dataclass(frozen=True)
class ItemInfo:
    lab: str
    step: str
    weight: float
    name: str


@dataclass
class LabRun:
    loaded: LoadedLab
    instance: Instance | None = None
    checks: list[CheckResult] = field(default_factory=list)
    selected: set[str] | None = None  # step ids of this run, None = all
    error: str | None = None
    started: str = field(default_factory=now_utc)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.loaded.lab.steps if s.id == step_id)

    def document(self, student: str | None, instance_name: str, uri: str) -> dict[str, Any]:
        """The run's result: what `lab check --json` prints and what the evidence file signs."""
        lab = self.loaded.lab
        steps = fold(lab, self.checks, self.selected)
        if self.error is not None:
            for step in steps:
                step.status, step.score, step.observed = Status.ERROR, 0.0, self.error
        domains = {}
        if self.instance is not None and self.error is None:
            try:
                domains = self.instance.domain_uuids()
            except Exception as exc:  # noqa: BLE001 - the document is still worth writing
                if not unreachable(exc):
                    raise
        return {
            "lab": lab.id, "lab_file": str(self.loaded.source.path.resolve()), "instance": instance_name, "student": student, "uri": uri,
            "score": round(sum(s.score for s in steps), 2), "max": sum(s.points for s in steps),
            "steps": [s.as_dict() for s in steps], "error": self.error,
            "domains": domains, "started": self.started, "finished": now_utc(),
            "host": _hostname(), "tool": "hyperlab",
        }


def _hostname() -> str:
    import socket

    return socket.gethostname()


class Grading:
    def __init__(self, config: pytest.Config) -> None:
        self.recorder = Recorder()
        self.labs: dict[str, LabRun] = {}
        self.items: dict[str, ItemInfo] = {}
        opt = config.getoption
        self.only_lab: str | None = opt("hl_lab")
        self.instance_name: str = opt("hl_instance")
        self.uri: str = opt("hl_uri")
        self.channel: str | None = opt("hl_channel")
        self.steps: list[str] = opt("hl_step") or []
        self.evidence: str | None = opt("hl_evidence")
        self.key: str | None = opt("hl_key")
        self.student: str | None = opt("hl_student")
        self._documents: dict[str, dict[str, Any]] | None = None

    # ------------------------------------------------------------------ collection

    def lab_run(self, lab_id: str, root: Path) -> LabRun:
        if lab_id not in self.labs:
            try:
                loaded = load_lab(lab_id, root)
            except LabError as exc:
                raise pytest.UsageError("\n".join(str(p) for p in exc.problems)) from None
            self.labs[lab_id] = LabRun(loaded)
        return self.labs[lab_id]

    def collect(self, items: list[pytest.Item]) -> list[pytest.Item]:
        problems: list[str] = []
        for item in items:
            marker = item.get_closest_marker("step")
            found = checker_lab(item.path)
            if found is None:
                if marker is not None:
                    problems.append(f"{item.nodeid}: @pytest.mark.step is only for checkers in checkers/<lab>/")
                continue
            run = self.lab_run(*found)
            lab = run.loaded.lab
            if marker is None:
                problems.append(f"{item.nodeid}: a checker needs @pytest.mark.step(\"<step id>\"); "
                                f"steps of {lab.id}: {', '.join(s.id for s in lab.steps)}")
                continue
            problem = _marker_problem(marker, lab.id, [s.id for s in lab.steps])
            if problem:
                problems.append(f"{item.nodeid}: {problem}")
                continue
            self.items[item.nodeid] = ItemInfo(lab.id, marker.args[0], float(marker.kwargs.get("weight", 1)),
                                               _check_name(item))
        if problems:
            raise pytest.UsageError("\n".join(problems))
        if self.only_lab is not None and self.only_lab not in self.labs:
            raise pytest.UsageError(f"--lab {self.only_lab}: no checkers of that lab were collected "
                                    f"(they live in checkers/{self.only_lab}/)")
        if self.steps:
            for run in self.labs.values():
                problem = unknown_step(run.loaded.lab, self.steps)
                if problem:
                    raise pytest.UsageError(problem)
                run.selected = closure(run.loaded.lab, set(self.steps))
        keep = []
        for item in items:
            info = self.items.get(item.nodeid)
            if info is None or self._selected(info):
                keep.append(item)
        ranks = {lab_id: order(run.loaded.lab) for lab_id, run in self.labs.items()}
        position = {item.nodeid: i for i, item in enumerate(keep)}

        def rank(item: pytest.Item) -> tuple[str, int, int]:
            info = self.items.get(item.nodeid)
            if info is None:
                return ("", 0, position[item.nodeid])
            return (info.lab, ranks[info.lab][info.step], position[item.nodeid])

        keep.sort(key=rank)
        if self.only_lab is not None:
            for lab_id in [l for l in self.labs if l != self.only_lab]:
                del self.labs[lab_id]
        return keep

    def _selected(self, info: ItemInfo) -> bool:
        if self.only_lab is not None and info.lab != self.only_lab:
            return False
        selected = self.labs[info.lab].selected
        return selected is None or info.step in selected

    def connect(self, items: list[pytest.Item]) -> None:
        """Reach every lab whose checkers need one; stop at once, in one line, if one is not deployed."""
        from hyperlab.ops.deploy import host_plan
        from hyperlab.core.model import _ident

        try:
            instance = _ident(self.instance_name)
        except ValueError as exc:
            raise pytest.UsageError(f"--instance: {exc}") from None
        needing = {self.items[i.nodeid].lab for i in items
                   if i.nodeid in self.items and LAB_FIXTURES & set(getattr(i, "fixturenames", ()))}
        for lab_id in sorted(needing):
            run = self.labs[lab_id]
            plan = host_plan(run.loaded, instance)
            run.instance = Instance(run.loaded, plan, self.uri, self.channel, self.recorder)
            run.error = run.instance.missing()
            if run.error is not None:
                self.finish()
                pytest.exit(run.error, returncode=NOT_DEPLOYED_EXIT)

    # --------------------------------------------------------------------- running

    def before(self, item: pytest.Item) -> None:
        info = self.items.get(item.nodeid)
        if info is None:
            return
        self.recorder.start()
        run = self.labs[info.lab]
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
        info = self.items.get(item.nodeid)
        if info is None or call.when == "teardown" or getattr(item, "_hl_recorded", False):
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
        self.labs[info.lab].checks.append(CheckResult(item.nodeid, info.name, info.step, info.weight, status,
                                                      message, call.duration, list(self.recorder.entries)))
        report.hl_status = str(status)  # type: ignore[attr-defined]
        if status in (Status.FAIL, Status.BLOCKED) or (status is Status.ERROR and exc is not None and unreachable(exc)):
            report.longrepr = f"{status} [{info.step}] {message}"

    # ---------------------------------------------------------------------- ending

    def documents(self) -> dict[str, dict[str, Any]]:
        """Each lab's result, made once when the checks are over: the evidence file and the terminal
        summary show the same document (one read of the domain UUIDs, one finishing time)."""
        if self._documents is None:
            self._documents = {lab_id: run.document(self.student, self.instance_name, self.uri)
                               for lab_id, run in self.labs.items()}
        return self._documents

    def finish(self) -> None:
        if self.evidence is None or not self.labs:
            return
        from hyperlab.host.files import write_atomic
        from hyperlab.grading.evidence import key_path, load_key, sign

        docs = self.documents()
        if len(docs) != 1:
            raise pytest.UsageError("--evidence needs the checkers of exactly one lab; add --lab")
        document = sign(next(iter(docs.values())), load_key(key_path(self.key), create=True))
        write_atomic(Path(self.evidence), json.dumps(document, ensure_ascii=False, indent=1))

    def close(self) -> None:
        for run in self.labs.values():
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
    import libvirt

    from hyperlab.host.conn import lookup_domain

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


# ------------------------------------------------------------------------ pytest hooks


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    from hyperlab.host.conn import DEFAULT_URI

    # testinfra's own plugin has a `host` fixture too (hosts from --hosts, over its own connections).
    # Loaded with -p, this plugin comes before the entry points and blocks it; loaded from a conftest,
    # it comes after, and its fixture wins. (Unregistering later is too late: pytest replays it.)
    if pluginmanager.get_plugin(TESTINFRA) is None:
        pluginmanager.set_blocked(TESTINFRA)

    group = parser.getgroup("hyperlab", "hyperlab checkers")
    group.addoption("--lab", dest="hl_lab", help="Run only this lab's checkers (checkers/<lab>/).")
    group.addoption("--instance", dest="hl_instance", default="default", help="The student's instance (default: default).")
    group.addoption("--uri", dest="hl_uri", default=DEFAULT_URI, help=f"libvirt URI of the instance's host (default {DEFAULT_URI}).")
    group.addoption("--channel", dest="hl_channel", choices=CHANNELS, help="Reach every node this way (default: each node's own channel).")
    group.addoption("--step", dest="hl_step", action="append", help="Check only this step and the steps it requires (repeatable).")
    group.addoption("--roster", dest="hl_roster", help="Grade every student of this roster CSV, each in its own run.")
    group.addoption("--evidence", dest="hl_evidence", help="Write the signed JSON result of the run to this file.")
    group.addoption("--key", dest="hl_key", help="Instructor key that signs evidence (default /var/lib/hyperlab/grading.key).")
    group.addoption("--student", dest="hl_student", help="Student name recorded in the evidence.")
    group.addoption("--out", dest="hl_out", default="grades", help="With --roster: folder for the gradebook (default grades/).")
    group.addoption("--jobs", dest="hl_jobs", type=int, default=4, help="With --roster: students graded at once (default 4).")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    roster = config.getoption("hl_roster")
    if not roster:
        return None
    from hyperlab.grading.runner import grade_from_pytest

    return grade_from_pytest(config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "step(id, weight=1): this checker checks step <id> of the lab in checkers/<lab>/")
    config.stash[STATE_KEY] = Grading(config)


def _state(config: pytest.Config) -> Grading:
    return config.stash[STATE_KEY]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    keep = _state(config).collect(items)
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        _state(session.config).connect(session.items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _state(item.config).before(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _state(item.config).report(item, call, report)
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    status = getattr(report, "hl_status", None)
    if status == "BLOCKED":
        return "blocked", "B", "BLOCKED"
    if status == "ERROR" and report.when == "call":
        return "error", "E", "ERROR"
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    for lab_id, document in state.documents().items():
        if document["error"] or not state.labs[lab_id].checks:
            continue  # stopped before checking (pytest's exit line says why), or only collected
        terminalreporter.section(f"hyperlab: {document['lab']} / {document['instance']}")
        for line in step_lines(document):
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state.labs and not any(run.error for run in state.labs.values()):
        state.finish()
    state.close()


def step_lines(document: dict[str, Any]) -> list[str]:
    """A plain-text step table (pytest's summary; `lab check` draws a rich one from the same data)."""
    lines = []
    for step in document["steps"]:
        lines.append(f"{step['status']:<8} {step['score']:>6g}/{step['points']:<4} {step['id']}: {step['title']['en']}")
        if step["status"] != "PASS":
            for text in (step["observed"] or "").splitlines()[:6]:
                lines.append(f"{'':22}observed: {text}")
            if step["hint"]:
                lines.append(f"{'':22}hint: {step['hint']['en']}")
    lines.append(f"score {document['score']:g} / {document['max']}")
    return lines


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Instance:
    """The deployed instance this checker looks at: its plan, addresses (`lab.ip(node)`), variables."""
    return _run_of(request).instance  # type: ignore[return-value]


@pytest.fixture
def node(request: pytest.FixtureRequest) -> Any:
    """`node("DC1")`: a node with .run / .sh / .ps / .ps_json / .read_file; one connection per node per run."""
    instance = _run_of(request).instance
    assert instance is not None

    def get(name: str) -> Node:
        return instance.node(name)

    return get


@pytest.fixture
def host(request: pytest.FixtureRequest) -> Any:
    """`host("SVR1")`: a pytest-testinfra Host for a Linux node, over the node's channel."""
    from hyperlab.grading.infra import testinfra_host

    instance = _run_of(request).instance
    assert instance is not None
    return lambda name: testinfra_host(instance.node(name))


@pytest.fixture
def probe(request: pytest.FixtureRequest) -> Probe:
    """Outside-in probes (TCP, RDP, Telnet, LDAP, DNS, SMB, WinRM) from the instance's network namespace."""
    instance = _run_of(request).instance
    assert instance is not None
    return Probe(instance.netns, instance.recorder)


def _run_of(request: pytest.FixtureRequest) -> LabRun:
    state = _state(request.config)
    info = state.items.get(request.node.nodeid)
    if info is None:
        raise pytest.UsageError(f"{request.node.nodeid}: the lab fixtures are for checkers in checkers/<lab>/")
    return state.labs[info.lab]


