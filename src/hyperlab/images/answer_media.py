"""Small ISO images that carry answer files and scripts to Windows guests, made with xorriso.

An ISO rather than a FAT floppy: Windows Setup reads `Autounattend.xml` from the root of any CD,
libvirt attaches it as a read-only SATA CD-ROM beside the others, and xorriso (Debian package
`xorriso`, listed in scripts/packages/host.txt) builds one from a folder without loop mounts.
Joliet keeps the long, mixed-case names Windows sees. SOURCE_DATE_EPOCH pins xorriso's
timestamps, so the same files give a byte-identical ISO and an unchanged medium is not rewritten.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from hyperlab.images.common import BuildError, PrerequisiteError
from hyperlab.images.isofs import iso_label_ok

FIXED_EPOCH = "1700000000"  # any constant: answer media carry no meaningful dates


def write_iso(files: Mapping[str, bytes], dest: Path, label: str) -> bool:
    """Write `files` (POSIX relative path -> content) as an ISO at `dest`, mode 0600.

    Returns False when `dest` already holds exactly that image (nothing written).
    """
    if not iso_label_ok(label):
        raise ValueError(f"bad ISO label {label!r}")
    exe = shutil.which("xorriso")
    if exe is None:
        raise PrerequisiteError("xorriso not found (it makes the Windows answer media); install it with: "
                                "apt-get install xorriso")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        stage = Path(tmp) / "root"
        for name, data in sorted(files.items()):
            if name.startswith("/") or ".." in Path(name).parts:
                raise ValueError(f"bad path on answer media: {name!r}")
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.utime(target, (int(FIXED_EPOCH), int(FIXED_EPOCH)))
        stage.mkdir(exist_ok=True)
        for folder in [*sorted((p for p in stage.rglob("*") if p.is_dir()), reverse=True), stage]:
            os.utime(folder, (int(FIXED_EPOCH), int(FIXED_EPOCH)))
        out = Path(tmp) / "media.iso"
        argv = [exe, "-as", "mkisofs", "-quiet", "-o", str(out), "-V", label, "-J", "-joliet-long", "-r",
                "-iso-level", "3", str(stage)]
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": FIXED_EPOCH})
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()
            raise BuildError(f"xorriso could not write {dest}: {last[-1] if last else proc.returncode}")
        if dest.is_file() and dest.read_bytes() == out.read_bytes():
            return False
        os.chmod(out, 0o600)
        os.replace(out, dest)
    return True
