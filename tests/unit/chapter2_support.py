"""Shared by the test_chapter2_* modules: the chapter-2 checker modules, recorded outputs, and a
replay double for the `node` fixture. NOT run against Windows: every output is hand-written from
Microsoft's documentation (tests/data/recorded/chapter-2/README.md cites it)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hyperlab.guest.base import RunResult
from hyperlab.grading.target import Node, Recorder

ROOT = Path(__file__).resolve().parents[2]
CHECKERS = ROOT / "checkers" / "chapter-2"
LAB = ROOT / "labs" / "chapter-2"
RECORDED = ROOT / "tests" / "data" / "recorded" / "chapter-2"

# The checkers import their helpers by bare name (pytest puts the checker folder on sys.path);
# do the same here so that the very same modules are imported.
if str(CHECKERS) not in sys.path:
    sys.path.insert(0, str(CHECKERS))


def recorded(script: str, case: str) -> Any:
    return json.loads((RECORDED / script / f"{case}.json").read_text())


def checker_module(name: str) -> ModuleType:
    """checkers/chapter-2/<name>.py imported under a name of its own (no clash with other labs)."""
    module_name = f"chapter2_checker_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, CHECKERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class ReplayChannel:
    """A Channel that answers each PowerShell script with a recorded output.

    `answers` maps a ps/ script name ("vms") to a recorded case ("SVR1-created"); the script is
    recognised by its text inside the command the real `Node.ps_json` builds.
    """

    name = "replay"
    os = "windows"

    def __init__(self, node: str, answers: dict[str, str]) -> None:
        self.node = node
        self.answers = answers
        self.commands: list[str] = []

    def run(self, command: str | list[str], *, input: bytes | None = None, timeout: float = 120) -> RunResult:
        assert isinstance(command, str), "chapter-2 checkers run PowerShell text"
        self.commands.append(command)
        for script, case in self.answers.items():
            if (CHECKERS / "ps" / f"{script}.ps1").read_text(encoding="utf-8") in command:
                stdout = json.dumps(recorded(script, case), separators=(",", ":")) + "\r\n"
                return RunResult(command, 0, stdout, "", 0.01)
        raise AssertionError(f"{self.node}: no recorded answer for this script:\n{command[:300]}")

    def close(self) -> None:
        pass


def replay_nodes(lab: Any, answers: dict[str, dict[str, str]]) -> Any:
    """The `node` fixture's shape: node("SVR1") -> a real target.Node over a ReplayChannel."""
    recorder = Recorder()
    nodes: dict[str, Node] = {}

    def get(name: str) -> Node:
        if name not in nodes:
            channel = ReplayChannel(name, answers.get(name, {}))
            nodes[name] = Node(lab.plan.node(name), lambda channel=channel: channel, recorder)
        return nodes[name]

    return get
