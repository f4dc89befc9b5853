"""`python -m hyperlab` is the `lab` command (used by tests that need a real process)."""

from hyperlab.cli.main import app

app(prog_name="lab")
