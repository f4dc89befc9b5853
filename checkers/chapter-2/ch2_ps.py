"""chapter-2: the checkers' PowerShell, kept in `ps/*.ps1` so that it can be parsed and reviewed.

`query(node, "switches", Names=[...])` puts the parameters in front of the script as PowerShell
variables and runs it with `Node.ps_json`, which ends the pipeline in `ConvertTo-Json -Depth 6`.
NOT run against Windows here (see docs/guide/windows-unproven.en.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PS_DIR = Path(__file__).with_name("ps")


def ps_literal(value: Any) -> str:
    """A Python value as a PowerShell literal: strings single-quoted (no expansion), lists as @()."""
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "@(" + ", ".join(ps_literal(v) for v in value) + ")"
    raise TypeError(f"no PowerShell literal for {value!r}")


def script(name: str, **params: Any) -> str:
    """The text of ps/<name>.ps1 with `$Param = value` lines in front of it."""
    head = "".join(f"${key} = {ps_literal(value)}\n" for key, value in params.items())
    return head + (PS_DIR / f"{name}.ps1").read_text(encoding="utf-8")


def query(node: Any, name: str, timeout: float = 120, **params: Any) -> Any:
    return node.ps_json(script(name, **params), timeout=timeout)
