"""A golden image from this store to a class host's store, as one tar stream: the manifest first,
then the qcow2 and the kernel and initrd the manifest names.

The receiver checks before it installs: the manifest is for the image it was sent as, its sha256 is
the one the sender announced, every file is one the manifest names, the qcow2 hashes to the manifest's
sha256 and names no backing file and no external data file (a qcow2 can point QEMU at any file of
the host, /dev/sda included). The
files become the store's only under the image's lock, manifest last, as a build would leave them.
An image that is an overlay of another (`backing`) is not sent; the host builds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import IO

from hyperlab.images.store import ImageError, ImageManifest, ImageStore, qemu_img, validate_name

MAX_MANIFEST = 1 << 20
MAX_IMAGE = 256 << 30


class TransferError(ImageError):
    """An image stream that cannot be sent or was not received whole."""


def sendable(store: ImageStore, name: str) -> ImageManifest | None:
    """The manifest of `name` when this store has it and it can travel alone."""
    if not store.exists(name):
        return None
    try:
        manifest = store.get(name)
    except ImageError:
        return None
    return manifest if manifest.backing is None else None


def send(store: ImageStore, name: str, out: IO[bytes]) -> None:
    """Write `name` as a tar stream to `out` (a pipe: nothing is staged on disk)."""
    manifest = store.get(name)
    files = [store.manifest_path(name), store.path(name)]
    files += [store.file(f) for f in (manifest.kernel, manifest.initrd) if f]
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(path.name)
            info.size, info.mode = path.stat().st_size, 0o444
            with path.open("rb") as f:
                tar.addfile(info, f)


def receive(store: ImageStore, name: str, sha256: str, stream: IO[bytes]) -> ImageManifest:
    """Install `name` from `stream` into `store`; kept as is when the store already has that build."""
    validate_name(name)
    if store.exists(name) and store.get(name).sha256 == sha256:
        return store.get(name)
    store.ensure_root()
    scratch = store.root / f".{name}.receiving.{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o755)
    try:
        with store.lock(name):
            manifest, staged = _unpack(name, sha256, stream, scratch)
            store.manifest_path(name).unlink(missing_ok=True)  # a half-replaced image reads as missing
            for filename, path in staged.items():
                store.install_file(path, filename)
            store.write_manifest(manifest)
            return manifest
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(name: str, sha256: str, stream: IO[bytes], scratch: Path) -> tuple[ImageManifest, dict[str, Path]]:
    manifest: ImageManifest | None = None
    expected: dict[str, str | None] = {}
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    raise TransferError(f"image {name}: refused {member.name[:80]!r}, not a plain file")
                source = tar.extractfile(member)
                if source is None:
                    raise TransferError(f"image {name}: {member.name[:80]!r} has no content")
                if manifest is None:
                    manifest = _manifest(name, sha256, member, source)
                    expected = {f"{name}.qcow2": manifest.sha256}
                    expected.update({f: None for f in (manifest.kernel, manifest.initrd) if f})
                    continue
                if member.name not in expected or member.name in staged:
                    raise TransferError(f"image {name}: refused {member.name[:80]!r}, which its manifest does not name")
                if member.size > MAX_IMAGE:
                    raise TransferError(f"image {name}: {member.name} is over {MAX_IMAGE >> 30} GiB")
                target = scratch / member.name
                digest = hashlib.sha256()
                with target.open("wb") as f:
                    while chunk := source.read(4 << 20):
                        digest.update(chunk)
                        f.write(chunk)
                want = expected[member.name]
                if want is not None and digest.hexdigest() != want:
                    raise TransferError(f"image {name}: the disk that arrived does not match its manifest's sha256")
                staged[member.name] = target
    except tarfile.TarError as exc:
        raise TransferError(f"image {name}: not an image stream ({exc})") from None
    except OSError as exc:
        raise TransferError(f"image {name}: cannot receive it ({exc.strerror or exc})") from None
    if manifest is None or set(staged) != set(expected):
        missing = sorted(set(expected) - set(staged)) or ["its manifest"]
        raise TransferError(f"image {name}: the stream ended without {', '.join(missing)}")
    try:
        info = json.loads(qemu_img("info", "-f", "qcow2", "--output=json", str(staged[f"{name}.qcow2"])))
    except (ValueError, ImageError) as exc:
        raise TransferError(f"image {name}: the disk is not a qcow2 ({str(exc)[:120]})") from None
    data_file = ((info.get("format-specific") or {}).get("data") or {}).get("data-file")
    if info.get("format") != "qcow2" or info.get("backing-filename") or data_file:
        raise TransferError(f"image {name}: the disk is not a standalone qcow2 (it names a backing or data file)")
    return manifest, staged


def _manifest(name: str, sha256: str, member: tarfile.TarInfo, source: IO[bytes]) -> ImageManifest:
    if member.name != f"{name}.json" or member.size > MAX_MANIFEST:
        raise TransferError(f"image {name}: the stream does not begin with its manifest")
    try:
        manifest = ImageManifest.model_validate_json(source.read())
    except ValueError:
        raise TransferError(f"image {name}: its manifest is damaged") from None
    if manifest.name != name or manifest.sha256 != sha256 or manifest.backing is not None:
        raise TransferError(f"image {name}: the manifest is for {manifest.name} {manifest.sha256[:12]}, "
                            f"not {name} {sha256[:12]} as announced")
    for side in (manifest.kernel, manifest.initrd):
        if side is not None and side not in (f"{name}.vmlinuz", f"{name}.initrd"):
            raise TransferError(f"image {name}: its manifest names the file {side[:80]!r}")
    return manifest
