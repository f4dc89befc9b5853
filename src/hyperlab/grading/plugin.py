"""The pytest plugin behind `pytest checkers/`, `lab check` and `lab grade`: its options, hooks and
fixtures. The state they drive is `hyperlab.grading.session.Grading`, one per pytest session.

A checker is a test function in `checkers/<lab>/` marked `@pytest.mark.step("<id>")`. The plugin
ties it to the step in `labs/<lab>/lab.yaml` (title, points, requires, hint), runs the steps in
`requires` order, reports a check whose required step did not pass as BLOCKED instead of running
it, tells FAIL (the student's state is wrong) from ERROR (the check could not look), and folds the
checks into step results with partial credit. Tests outside `checkers/<lab>/` are left alone.
Without --instance every lab is checked against each instance of it deployed at --uri, and a lab
with none is said in one line and skipped (`hyperlab.grading.session`).

Options (group "hyperlab"): --lab, --instance, --uri, --channel, --step, --roster, --evidence,
--key, --student, --out, --jobs.
"""

from __future__ import annotations

from typing import Any

import pytest

from hyperlab.grading.outcome import Status
from hyperlab.grading.session import INSTANCE_PARAM, Grading, LabRun, step_lines
from hyperlab.grading.target import Instance, Node, Probe
from hyperlab.core.model import CHANNELS
from hyperlab.core.model import DEFAULT_URI

TESTINFRA = "pytest11.testinfra"  # the entry point name of pytest-testinfra's plugin
STATE_KEY = pytest.StashKey[Grading]()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # testinfra's own plugin has a `host` fixture too (hosts from --hosts, over its own connections).
    # Loaded with -p, this plugin comes before the entry points and blocks it; loaded from a conftest,
    # it comes after, and its fixture wins. (Unregistering later is too late: pytest replays it.)
    if pluginmanager.get_plugin(TESTINFRA) is None:
        pluginmanager.set_blocked(TESTINFRA)

    group = parser.getgroup("hyperlab", "hyperlab checkers")
    group.addoption("--lab", dest="hl_lab", help="Run only this lab's checkers (checkers/<lab>/).")
    group.addoption("--instance", dest="hl_instance", default=None,
                    help="Check this instance of each lab (default: every instance deployed at --uri).")
    group.addoption("--uri", dest="hl_uri", default=DEFAULT_URI, help=f"libvirt URI of the instance's host (default {DEFAULT_URI}).")
    group.addoption("--channel", dest="hl_channel", choices=CHANNELS, help="Reach every node this way (default: each node's own channel).")
    group.addoption("--step", dest="hl_step", action="append", help="Check only this step and the steps it requires (repeatable).")
    group.addoption("--roster", dest="hl_roster", help="Grade every student of this roster CSV, each in its own run.")
    group.addoption("--evidence", dest="hl_evidence", help="Write the signed JSON result of the run to this file.")
    group.addoption("--key", dest="hl_key", help="Instructor key that signs evidence (default /var/lib/hyperlab/grading.key).")
    group.addoption("--student", dest="hl_student", help="Student name recorded in the evidence.")
    # `lab grade` says --hosts; pytest-testinfra, which checkers may use, owns that option in pytest
    group.addoption("--hosts-file", dest="hl_hosts", help="With --roster: the class's hosts file (hosts.yaml); each "
                    "student is checked on the host the roster's host column names.")
    group.addoption("--out", dest="hl_out", default="grades", help="With --roster: folder for the gradebook (default grades/).")
    group.addoption("--jobs", dest="hl_jobs", type=int, default=4, help="With --roster: students graded at once (default 4).")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("hl_roster"):
        return None
    from hyperlab.grading.runner import grade_from_pytest  # the class run is only needed with --roster

    return grade_from_pytest(config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "step(id, weight=1): this checker checks step <id> of the lab in checkers/<lab>/")
    config.stash[STATE_KEY] = Grading(config)


def _state(config: pytest.Config) -> Grading:
    return config.stash[STATE_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    instances = _state(metafunc.config).instances_for(metafunc)
    if instances:
        metafunc.parametrize(INSTANCE_PARAM, instances, ids=instances)


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
    status = getattr(report, "hl_status", None)  # a str on the report, which may cross an xdist worker
    if status == Status.BLOCKED:
        return "blocked", "B", str(Status.BLOCKED)
    if status == Status.ERROR and report.when == "call":
        return "error", "E", str(Status.ERROR)
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    for line in state.left_out:
        terminalreporter.write_line(f"hyperlab: {line}", yellow=True)
    for key, document in state.documents().items():
        if document.error or not state.runs[key].checks:
            continue  # stopped before checking (pytest's exit line says why), or only collected
        terminalreporter.section(f"hyperlab: {document.lab} / {document.instance}")
        for line in step_lines(document):
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _state(session.config)
    if state.runs and not any(run.error for run in state.runs.values()):
        state.finish()
    state.close()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def hl_instance() -> str | None:
    """The instance a checker is parametrized with when `pytest checkers/` looks for deployed ones
    (autouse, so that every checker can be parametrized; None for everything else)."""
    return None


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Instance:
    """The deployed instance this checker looks at: its plan, addresses (`lab.ip(node)`), variables."""
    return _instance_of(request)


@pytest.fixture
def node(request: pytest.FixtureRequest) -> Any:
    """`node("DC1")`: a node with .run / .sh / .ps / .ps_json / .read_file; one connection per node per run."""
    instance = _instance_of(request)

    def get(name: str) -> Node:
        return instance.node(name)

    return get


@pytest.fixture
def host(request: pytest.FixtureRequest) -> Any:
    """`host("SVR1")`: a pytest-testinfra Host for a Linux node, over the node's channel."""
    from hyperlab.grading.infra import testinfra_host  # testinfra is only imported where a checker asks for it

    instance = _instance_of(request)
    return lambda name: testinfra_host(instance.node(name))


@pytest.fixture
def probe(request: pytest.FixtureRequest) -> Probe:
    """Outside-in probes (TCP, RDP, Telnet, LDAP, DNS, SMB, WinRM) from the instance's network namespace."""
    instance = _instance_of(request)
    return Probe(instance.netns, instance.recorder)


def _run_of(request: pytest.FixtureRequest) -> LabRun:
    run = _state(request.config).run_of(request.node)  # type: ignore[arg-type]
    if run is None:
        raise pytest.UsageError(f"{request.node.nodeid}: the lab fixtures are for checkers in checkers/<lab>/")
    return run


def _instance_of(request: pytest.FixtureRequest) -> Instance:
    instance = _run_of(request).instance
    assert instance is not None  # every run whose checkers use a lab fixture was connected
    return instance
