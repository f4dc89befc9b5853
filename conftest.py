"""Root conftest: makes `tests.*` importable and will load the grading plugin for checkers/."""
