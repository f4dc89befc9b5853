"""Root conftest: makes `tests.*` importable and loads the grading plugin, so that a plain
`pytest checkers/` works for an instructor. The plugin leaves tests outside checkers/ alone."""

pytest_plugins = ["hyperlab.grading.plugin", "pytester"]
