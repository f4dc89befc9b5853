"""Writing each Windows node's unattend medium (an ISO beside its overlay) before its domain starts.

What goes on the medium is `hyperlab.render.node_media`; the lab's `oem/` folder is read here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import Plan
from hyperlab.images.answer_media import write_iso
from hyperlab.render.node_media import ADMIN_SECRET, LABEL, OEM_DIR, media_files
from hyperlab.render.unattend import MEDIA_DIR


def oem_files(lab_folder: Path, node: str) -> dict[str, bytes]:
    """`oem/*` for every Windows node and `oem/<node>/*` for this one, as media paths under hyperlab/oem/."""
    root = lab_folder / OEM_DIR
    files: dict[str, bytes] = {}
    if not root.is_dir():
        return files
    for path in sorted(root.iterdir()):
        if path.is_file():
            files[f"{MEDIA_DIR}/{OEM_DIR}/{path.name}"] = path.read_bytes()
    mine = root / node
    if mine.is_dir():
        for path in sorted(mine.rglob("*")):
            if path.is_file():
                files[f"{MEDIA_DIR}/{OEM_DIR}/{path.relative_to(mine).as_posix()}"] = path.read_bytes()
    return files


def ensure_unattend_media(loaded: LoadedLab, plan: Plan, values: dict[str, str],
                          progress: Callable[[str, str], None] = lambda _n, _p: None) -> list[Path]:
    """Write each Windows node's medium before its domain starts; an unchanged medium is left alone."""
    written = []
    for node in plan.nodes:
        if node.unattend_iso is None:
            continue
        files = media_files(node, loaded, values[ADMIN_SECRET], oem_files(loaded.folder, node.name))
        if write_iso(files, node.unattend_iso, LABEL):
            progress(node.name, f"unattend medium {node.unattend_iso.name} written")
            written.append(node.unattend_iso)
    return written
