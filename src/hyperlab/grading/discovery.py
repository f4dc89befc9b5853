"""Where checkers live: `<checkout>/checkers/<lab id>/test_*.py`, beside `labs/<lab id>/`."""

from __future__ import annotations

from pathlib import Path

from hyperlab.core.errors import UsageError, display_path
from hyperlab.core.load import LoadedLab


def checker_lab(path: Path) -> tuple[str, Path] | None:
    """(lab id, checkout root) for a file under `<root>/checkers/<lab>/`, else None."""
    for folder in path.parents:
        if folder.parent.name == "checkers":
            return folder.name, folder.parent.parent
    return None


def checkers_dir(loaded: LoadedLab) -> Path:
    """The lab's checkers folder; UsageError when the lab has no checkers yet."""
    folder = (loaded.folder.parent.parent / "checkers" / loaded.lab.id).resolve()
    if not any(folder.glob("test_*.py")):
        raise UsageError(f"lab {loaded.lab.id} has no checkers yet (expected test_*.py in {display_path(folder)})")
    return folder


def labs_under(path: Path) -> set[tuple[str, Path]]:
    """The labs whose checkers a pytest argument names: a file or folder in `checkers/<lab>/`, or
    `checkers/` itself (every lab with checkers)."""
    path = path.resolve()
    found = checker_lab(path / "_")
    if found is not None:
        return {found}
    if path.name == "checkers" and path.is_dir():
        return {(lab.name, path.parent) for lab in sorted(path.iterdir()) if any(lab.glob("test_*.py"))}
    return set()
