"""`lab`: the command line (typer), one module per command group."""

from hyperlab.cli.app import app

__all__ = ["app"]
