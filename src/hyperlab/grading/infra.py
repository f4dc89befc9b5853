"""pytest-testinfra's `host` over hyperlab's channels, so Linux checkers can say `host.service("smbd")`.

testinfra's own backends open their own connections (and cannot enter the instance's network
namespace); this one sends testinfra's commands through the node's channel, so they are recorded
as evidence like every other command.
"""

from __future__ import annotations

from typing import Any

from hyperlab.grading.target import CheckError, Node

try:
    from testinfra.backend.base import BaseBackend, CommandResult
    from testinfra.host import Host
except ImportError:  # pragma: no cover - the dependency is declared; this names the fix if it is missing
    raise ImportError("the `host` fixture needs pytest-testinfra: pip install pytest-testinfra") from None


class ChannelBackend(BaseBackend):
    NAME = "hyperlab"

    def __init__(self, node: Node, *args: Any, **kwargs: Any) -> None:
        self.node = node
        super().__init__(node.name, *args, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)
        result = self.node.run(cmd)
        return self.result(result.exit_code, self.encode(cmd), result.stdout.encode(), result.stderr.encode())


def testinfra_host(node: Node) -> Host:
    if node.os != "linux":
        raise CheckError(f"{node.name} runs {node.os}: testinfra's host is for Linux nodes; use node.ps_json()")
    return Host(ChannelBackend(node))
