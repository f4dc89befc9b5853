"""`lab`: the command line (typer), one module per command group; `hyperlab.cli.main` assembles it."""
