"""The path rule for everything a lab or topology names: a relative path that stays, symlinks
followed, inside the folder it is relative to. A lab is someone else's files; a path that leaves
its folder (`../../etc/passwd`, or a link to `/etc/shadow`) would copy a host file into a guest.
"""

from __future__ import annotations

from pathlib import Path

from hyperlab.core.errors import UsageError, printable


def inside(folder: Path, relative: str) -> Path | None:
    """The file `relative` names under `folder`, symlinks followed; None when it would leave it."""
    if not relative or Path(relative).is_absolute() or "\0" in relative:
        return None
    root = folder.resolve()
    try:
        target = (root / relative).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    return target if target.is_relative_to(root) else None


def output_folder(path: Path, option: str, below: tuple[str, ...] = ()) -> Path:
    """A folder a command will fill (made if missing), and the subfolders `below` it will make:
    none of them, nor any folder above, may be a file. Checked before anything runs."""
    for part in (*(path / b for b in below), path, *path.parents):
        if part.exists() and not part.is_dir():
            raise UsageError(f"{option} {printable(str(path))}: {printable(str(part))} is a file, not a folder")
    return path
