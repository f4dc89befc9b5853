"""`python -m hyperlab` is the `lab` command (used by tests that need a real process)."""

from hyperlab.cli import app

app(prog_name="lab")
