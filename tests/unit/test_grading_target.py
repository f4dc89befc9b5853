"""The checker handles without a lab: PowerShell JSON wrapping and parsing (as Windows PowerShell 5.1
prints it; not run against Windows here), and the evidence a node command leaves behind."""

from __future__ import annotations

import pytest

from hyperlab.grading.target import CheckError, Node, Recorder, parse_ps_json, ps_json_script
from hyperlab.guest.base import RunResult
from hyperlab.core.plan import PlanNode


def result(stdout: str, code: int = 0) -> RunResult:
    return RunResult("ps", code, stdout, "", 0.1)


def test_the_whole_pipeline_goes_through_convertto_json() -> None:
    script = ps_json_script("Get-VM | Select Name, @{n='State'; e={[string]$_.State}}")
    assert script.endswith("} | ConvertTo-Json -Depth 6 -Compress")
    assert "& {\nGet-VM" in script


@pytest.mark.parametrize("stdout, value", [
    ('{"Name":"vm1","State":"Running"}\r\n', {"Name": "vm1", "State": "Running"}),
    ('\ufeff[{"Name":"a"},{"Name":"b"}]', [{"Name": "a"}, {"Name": "b"}]),
    ("", None),  # an empty pipeline prints nothing
    ("true", True),
])
def test_powershell_json_is_parsed(stdout: str, value: object) -> None:
    assert parse_ps_json("SVR1", result(stdout)) == value


def test_non_json_and_failures_are_errors_not_fails() -> None:
    with pytest.raises(CheckError, match="did not print JSON"):
        parse_ps_json("SVR1", result("WARNING: something\n{"))
    with pytest.raises(CheckError, match="PowerShell failed on SVR1"):
        parse_ps_json("SVR1", result("", code=1))


class OneAnswer:
    """A channel that answers every command the same way (the Channel protocol, in memory)."""

    name = "agent"
    os = "linux"

    def __init__(self) -> None:
        self.commands: list[object] = []

    def run(self, command, *, input=None, timeout=120):  # noqa: ANN001, A002
        self.commands.append(command)
        return RunResult(str(command), 3, "out", "err", 0.5)

    def close(self) -> None:
        self.commands.append("closed")


def plan_node(os_name: str = "linux") -> PlanNode:
    from hyperlab.core.load import load_lab
    from hyperlab.core.plan import HostFacts, plan
    from pathlib import Path

    loaded = load_lab("solo", Path(__file__).resolve().parents[1] / "data")
    node = plan(loaded, "t", HostFacts(accel="tcg")).node("S1")
    return node.model_copy(update={"os": os_name})


def test_commands_are_recorded_as_evidence_and_the_channel_opened_once() -> None:
    recorder, channel, opened = Recorder(), OneAnswer(), []
    node = Node(plan_node(), lambda: opened.append(1) or channel, recorder)
    recorder.start()
    node.sh("id kosa")
    node.run(["ls", "/"])
    assert opened == [1]
    assert [(e["command"], e["exit_code"], e["stdout"], e["stderr"]) for e in recorder.entries] == [
        ("id kosa", 3, "out", "err"), ("['ls', '/']", 3, "out", "err")]
    node.close()
    assert channel.commands[-1] == "closed"


def test_the_wrong_shell_for_the_os_is_a_checker_error() -> None:
    with pytest.raises(CheckError, match="runs linux: use .sh"):
        Node(plan_node(), OneAnswer, Recorder()).ps("Get-Service")
    with pytest.raises(CheckError, match="runs windows: use .ps"):
        Node(plan_node("windows"), OneAnswer, Recorder()).sh("ls")
