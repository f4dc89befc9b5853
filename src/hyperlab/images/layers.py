"""Prepared labs' layer sets in the image store: `<store>/layers/<lab>/<inputs hash>/`.

Each set holds one read-only qcow2 per volume of the lab (backed by its golden image, or none for a
data disk made empty) and `layer.json` (`core.layers.LayerRecord`), written last. Which instances
use a set is read from the instances' own overlays (their qcow2 headers name their backing file),
not from a list that could go out of date: a set in use is never removed or rewritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from hyperlab.core.layers import HASH_PATTERN, LayerInputs, LayerRecord, LayerVolume, layer_relpath
from hyperlab.host.files import write_atomic
from hyperlab.images.store import READ_ONLY_MODE, ImageStore

RECORD = "layer.json"
QCOW2_MAGIC = b"QFI\xfb"


class LayerInUse(Exception):
    """A layer set that an instance's overlay uses; the message names the instances."""


@dataclass(frozen=True)
class LayerSet:
    folder: Path
    record: LayerRecord

    def path(self, volume: str) -> Path:
        return self.folder / volume

    def complete(self) -> bool:
        return all(self.path(v.name).is_file() for v in self.record.volumes)


def qcow2_backing(path: Path) -> str | None:
    """The backing file a qcow2 header names (None for none, or for a file that is not qcow2).
    Read from the header itself: a running domain's overlay is locked against `qemu-img info`
    without -U, and a header is 24 bytes away."""
    try:
        with path.open("rb") as f:
            header = f.read(24)
            if len(header) < 24 or header[:4] != QCOW2_MAGIC:
                return None
            offset, size = struct.unpack(">QI", header[8:20])
            if not offset or not 0 < size <= 4096:
                return None
            f.seek(offset)
            return f.read(size).decode("utf-8", "replace")
    except OSError:
        return None


class LayerStore:
    def __init__(self, store: ImageStore, instances_dir: Path) -> None:
        self.store = store
        self.root = store.root / "layers"
        self.instances_dir = instances_dir

    def folder(self, lab: str, inputs_hash: str) -> Path:
        return self.store.root / layer_relpath(lab, inputs_hash)

    def sets(self, lab: str | None = None) -> list[LayerSet]:
        """Finished sets (with a readable layer.json), newest first."""
        found = []
        labs = [self.root / lab] if lab else sorted(p for p in self.root.glob("*") if p.is_dir())
        for lab_dir in labs:
            for folder in sorted(lab_dir.glob("*")):
                record = self._read(folder)
                if record is not None:
                    found.append(LayerSet(folder, record))
        return sorted(found, key=lambda s: s.record.created, reverse=True)

    def unfinished(self, lab: str) -> list[Path]:
        """Folders of `lab` without a readable record: a `lab prepare` that did not end."""
        return [p for p in sorted((self.root / lab).glob("*")) if p.is_dir() and self._read(p) is None]

    def _read(self, folder: Path) -> LayerRecord | None:
        if not HASH_PATTERN.fullmatch(folder.name):
            return None
        try:
            record = LayerRecord.model_validate_json((folder / RECORD).read_bytes())
        except (OSError, ValidationError):
            return None
        return record if record.inputs_hash == folder.name and record.lab == folder.parent.name else None

    def find(self, lab: str, inputs_hash: str) -> LayerSet | None:
        record = self._read(self.folder(lab, inputs_hash))
        found = LayerSet(self.folder(lab, inputs_hash), record) if record else None
        return found if found is not None and found.complete() else None

    def users(self, folder: Path) -> list[str]:
        """Instance folders (`<lab>.<instance>`) whose overlays are backed by a file of `folder`."""
        folder = folder.resolve()
        found = set()
        for overlay in self.instances_dir.glob("*/*.qcow2"):
            backing = qcow2_backing(overlay)
            if backing is not None and Path(backing).parent.resolve() == folder:
                found.add(overlay.parent.name)
        return sorted(found)

    def save(self, lab: str, inputs: LayerInputs, volumes: list[tuple[str, Path, str | None]]) -> LayerSet:
        """Move each (node, volume file, golden backing) into the set, read-only, then write the
        record. The files are moved, not copied, when the instance lives on the same filesystem."""
        inputs_hash = inputs.digest()
        folder = self.folder(lab, inputs_hash)
        if folder.exists():
            if self.users(folder):
                raise LayerInUse(f"layers {folder} are in use by {', '.join(self.users(folder))}; they are never rewritten")
            shutil.rmtree(folder)
        folder.mkdir(parents=True, mode=0o755)
        kept = []
        for node, source, backing in volumes:
            target = folder / source.name
            try:
                os.rename(source, target)
            except OSError:
                shutil.copyfile(source, target)
                source.unlink()
            target.chmod(READ_ONLY_MODE)
            kept.append(LayerVolume(node=node, name=source.name, bytes=target.stat().st_blocks * 512, backing=backing))
        record = LayerRecord(lab=lab, inputs=inputs, inputs_hash=inputs_hash, created=datetime.now(timezone.utc),
                             volumes=kept)
        write_atomic(folder / RECORD, record.model_dump_json(indent=2))
        return LayerSet(folder, record)

    def prune(self, lab: str, keep: str | None = None) -> list[Path]:
        """Remove `lab`'s sets (finished or not) other than `keep` that no instance uses."""
        removed = []
        for folder in sorted((self.root / lab).glob("*")):
            if not folder.is_dir() or folder.name == keep or self.users(folder):
                continue
            for child in folder.iterdir():
                with contextlib.suppress(OSError):
                    child.chmod(0o644)
            shutil.rmtree(folder)
            removed.append(folder)
        return removed
