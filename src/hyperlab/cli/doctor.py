"""`lab doctor [LAB] [--json] [--recheck]`: the host's readiness as a table; exit 1 when a check FAILs.

Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 2 a user mistake (unknown lab),
as everywhere in the CLI. The checks are `hyperlab.ops.doctor`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from hyperlab.cli.app import ExitCode, app, err, exit_with, out, reports_mistakes
from hyperlab.core.load import load_lab
from hyperlab.host.accel import CACHE_PATH, KVM_DEVICE, KVM_TIMEOUT, host_cache_key, load_cached
from hyperlab.images.store import ImageStore
from hyperlab.ops.doctor import diagnose, host_offer
from hyperlab.ops.doctor_model import Finding, any_failed

STYLES = {"ok": "green", "info": "blue", "warn": "yellow", "fail": "bold red"}


def render_table(findings: list[Finding], title: str | None = None) -> Table:
    table = Table("check", "status", "detail", "fix", title=title)
    for column in table.columns:
        column.overflow = "fold"
    for f in findings:
        # Text, not markup: details quote guest output and paths, which may hold [brackets]
        table.add_row(Text(f.what), Text(f.label, style=STYLES[f.level]), Text(f.detail), Text(f.fix or ""))
    return table


def fix_lines(findings: list[Finding]) -> list[str]:
    """The commands to run, one per line, never wrapped: what a user copies."""
    return [f"{f.fix}    # {f.what}" for f in findings if f.fix and f.level in ("fail", "warn")]


def as_json(findings: list[Finding], lab: str | None, host: dict[str, int | str] | None = None) -> str:
    data: dict[str, Any] = {"lab": lab, "ok": not any_failed(findings), "findings": [f.to_json() for f in findings]}
    if host is not None:
        data["host"] = host
    return json.dumps(data, indent=2, ensure_ascii=False)


@app.command("doctor")
@reports_mistakes
def doctor(
    lab: Annotated[str | None, typer.Argument(help="Lab id or lab.yaml path: also check what this lab needs.")] = None,
    as_json_: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    recheck: Annotated[bool, typer.Option("--recheck", help="Test KVM again instead of using the cached verdict.")] = False,
) -> None:
    """Check this host for labs: libvirt, QEMU, KVM (really booting a test guest), firmware, disk,
    memory, golden images. Each problem comes with the command that fixes it."""
    loaded = load_lab(lab) if lab is not None else None
    if KVM_DEVICE.exists() and (recheck or load_cached(CACHE_PATH, host_cache_key()) is None):
        err.print(f"testing whether KVM really works: booting a test guest (up to {KVM_TIMEOUT:g} s, once) ...",
                  markup=False)
    store = ImageStore()
    findings = diagnose(loaded, store, recheck=recheck)
    lab_id = loaded.lab.id if loaded is not None else None
    if as_json_:
        print(as_json(findings, lab_id, host_offer(store)))
    else:
        out.print(render_table(findings, title=f"lab doctor {lab_id}" if lab_id else "lab doctor"))
        fixes = fix_lines(findings)
        if fixes:
            out.print("\nto fix:", markup=False)
            for line in fixes:
                out.print(f"  {line}", markup=False)
    if any_failed(findings):
        raise exit_with(ExitCode.FAILED)
