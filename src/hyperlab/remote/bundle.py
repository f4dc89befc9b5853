"""A lab's content as it travels to a class host: its folder, its topology (with the topology's
first-boot scripts) and its checkers, named by one content hash.

A host keeps each bundle once, in `BUNDLES/<hash>/`, laid out as a checkout
(`labs/<id>/`, `topologies/`, `checkers/<id>/`), so that its own `lab` finds everything the way it
does at home. The hash covers every file's path, executable bit and bytes: the same lab is the same
folder on every host, and a changed lab is a new one (instances already up keep theirs).

Both sides are here. The sender (`lab_files`, `pack`) follows symlinks that stay inside their
folder, as loading a lab does. The receiver (`receive`) believes nothing of the stream: only plain
files and folders with relative names, within size limits, are written, into a scratch folder
that becomes the bundle only once its content hashes to the name it was sent under.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from hyperlab.core.catalog import SHA256
from hyperlab.core.errors import UsageError, printable
from hyperlab.core.load import LoadedLab
from hyperlab.core.paths import inside

BUNDLES = Path("/var/lib/hyperlab/bundles")
MAX_FILES = 2000
MAX_BYTES = 64 << 20  # labs here are ~200 KiB with their checkers; images travel separately
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".git"}
_PART_RE = re.compile(r"[A-Za-z0-9._+-]{1,100}")


class BundleError(Exception):
    """A bundle that cannot be made or was not received whole; the message says why, in one line."""


@dataclass(frozen=True)
class Bundle:
    lab: str
    files: dict[str, Path]  # path inside the bundle -> the file here
    hash: str

    @property
    def lab_file(self) -> str:
        """The lab's file, relative to the bundle's folder."""
        return f"labs/{self.lab}/lab.yaml"

    def folder(self, root: Path = BUNDLES) -> str:
        return str(root / self.hash)


def check_hash(value: str) -> str:
    if not SHA256.fullmatch(value):
        raise BundleError(f"{printable(value)[:80]!r} is not a bundle hash (64 lower-case hex digits)")
    return value


def _walk(folder: Path, prefix: str, into: dict[str, Path]) -> None:
    """Every file below `folder`, as `prefix/relative` -> resolved path; links must stay inside."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        here = Path(dirpath)
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            relative = (here / name).relative_to(root).as_posix()
            target = inside(root, relative)
            if target is None:
                raise UsageError(f"{printable(prefix)}/{printable(relative)} is a link that leaves {printable(str(root))}; "
                                 "copy the file there")
            _add(into, f"{prefix}/{relative}", target)
        for name in list(dirnames):
            if (here / name).is_symlink():
                raise UsageError(f"{printable(prefix)}/{printable((here / name).relative_to(root).as_posix())} is a "
                                 "linked folder; a lab's folders are its own (copy it in)")


def _add(into: dict[str, Path], name: str, path: Path) -> None:
    if not all(_PART_RE.fullmatch(part) and part not in (".", "..") for part in name.split("/")):
        raise UsageError(f"{printable(name)}: a file name a class host would not take; use letters, digits and . _ + -")
    if not path.is_file():
        raise UsageError(f"{printable(name)} is not a plain file")
    into[name] = path
    if len(into) > MAX_FILES:
        raise UsageError(f"the lab has more than {MAX_FILES} files; is a build folder inside it?")


def lab_files(loaded: LoadedLab) -> dict[str, Path]:
    """What a class host needs of the lab: its folder, topology, first-boot scripts and checkers."""
    lab = loaded.lab.id
    files: dict[str, Path] = {}
    _walk(loaded.folder, f"labs/{lab}", files)
    topology = loaded.topology.source.path
    _add(files, f"topologies/{topology.name}", topology.resolve())
    for node in loaded.topology.topology.nodes.values():
        for script in node.first_boot:
            path = inside(topology.parent, script)
            if path is not None:  # validated when the lab was loaded
                _add(files, f"topologies/{PurePosixPath(script).as_posix()}", path)
    checkers = loaded.folder.parent.parent / "checkers" / lab
    if checkers.is_dir():
        _walk(checkers, f"checkers/{lab}", files)
    if sum(p.stat().st_size for p in files.values()) > MAX_BYTES:
        raise UsageError(f"the lab's files are over {MAX_BYTES >> 20} MiB; golden images and disks belong in the image store")
    return dict(sorted(files.items()))


def _digest(entries: list[tuple[str, bool, str]]) -> str:
    h = hashlib.sha256(b"hyperlab-bundle-1\n")
    for name, executable, sha in sorted(entries):
        h.update(f"{name}\0{'x' if executable else '-'}\0{sha}\n".encode())
    return h.hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bundle(loaded: LoadedLab) -> Bundle:
    files = lab_files(loaded)
    digest = _digest([(name, os.access(path, os.X_OK), _sha(path)) for name, path in files.items()])
    return Bundle(loaded.lab.id, files, digest)


def pack(bundle: Bundle) -> bytes:
    """The bundle as an uncompressed tar: names, modes 0644/0755, no owners, no times."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in bundle.files.items():
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if os.access(path, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ----------------------------------------------------------------------------- the host's side


def present(root: Path = BUNDLES) -> list[str]:
    """The bundles this host keeps."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if SHA256.fullmatch(p.name) and p.is_dir())


def receive(expected: str, stream: IO[bytes], root: Path = BUNDLES) -> Path:
    """Unpack a bundle sent as `expected` from `stream`; its folder. Kept as is when already here."""
    check_hash(expected)
    final = root / expected
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f".{expected}.{os.getpid()}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        entries = _unpack(stream, scratch)
        got = _digest(entries)
        if got != expected:
            raise BundleError(f"the lab that arrived hashes to {got[:12]}, not {expected[:12]}; it was changed on the way")
        os.chmod(scratch, 0o755)
        try:
            os.rename(scratch, final)
        except OSError:
            if not final.is_dir():  # another sender's copy got there first: that one is as good
                raise
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(stream: IO[bytes], scratch: Path) -> list[tuple[str, bool, str]]:
    entries: list[tuple[str, bool, str]] = []
    total = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name
                parts = name.split("/")
                if not member.isfile() or name.startswith("/") or not all(
                        _PART_RE.fullmatch(p) and p not in (".", "..") for p in parts):
                    raise BundleError(f"refused {printable(name)[:100]!r}: only plain files with relative names travel")
                total += member.size
                if len(entries) >= MAX_FILES or total > MAX_BYTES:
                    raise BundleError(f"refused: over {MAX_FILES} files or {MAX_BYTES >> 20} MiB")
                source = tar.extractfile(member)
                data = source.read() if source is not None else b""
                target = scratch.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    raise BundleError(f"refused: {printable(name)[:100]!r} twice")
                executable = bool(member.mode & 0o111)
                target.write_bytes(data)
                os.chmod(target, 0o755 if executable else 0o644)
                entries.append((name, executable, hashlib.sha256(data).hexdigest()))
    except tarfile.TarError as exc:
        raise BundleError(f"not a lab bundle: {exc}") from None
    except OSError as exc:  # a name that is a file in one entry and a folder in another, a full disk
        raise BundleError(f"cannot unpack the lab: {exc.strerror or exc}") from None
    for folder in [scratch, *(p for p in scratch.rglob("*") if p.is_dir())]:
        os.chmod(folder, 0o755)
    return entries
