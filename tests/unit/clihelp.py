"""Run the `lab` command in-process (fast) with stdout and stderr kept apart."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from hyperlab.cli.main import app


def run_lab(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)
