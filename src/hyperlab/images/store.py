"""The image store: a directory of read-only golden qcow2 images and their manifests.

Layout of a store (default ``/var/lib/libvirt/images/hyperlab``, overridden by the
environment variable ``HYPERLAB_IMAGES``)::

    <root>/<name>.qcow2     golden disk, mode 0444 once built
    <root>/<name>.json      manifest (ImageManifest), written atomically
    <root>/<name>.vmlinuz   kernel   } only for images that boot by direct kernel boot;
    <root>/<name>.initrd    initrd   } names recorded in the manifest, mode 0444

Every lab node gets a thin overlay (``create_overlay``) whose backing file is the golden
image; resetting a node is dropping the overlay and creating it again.

Notes that shape this module:

* libvirt's dynamic ownership chowns the backing files of running domains to the qemu user
  (and back when they stop). Read-only-ness is therefore carried by the *mode* (0444), never
  by the owner, and nothing here relies on who owns a golden file.
* QEMU runs as ``libvirt-qemu``: the store directory and all its parents must be searchable
  by that user. ``ensure_root`` makes the store itself 0755; a store below a 0700 directory
  (for example pytest's ``/tmp/pytest-of-root``) cannot be used by libvirt guests.
* ``qemu-img info`` is called with ``-U`` (force share) so listing works while guests run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperlab.core.catalog import IMAGE_NAME, IMAGES, SHA256
from hyperlab.host.facts import images_root
from hyperlab.host.files import write_atomic


READ_ONLY_MODE = 0o444


class ImageError(Exception):
    """Base class of image store errors; the message is one line meant for the user."""


class InvalidImageName(ImageError, ValueError):
    pass


class ImageBusy(ImageError):
    """Another process holds the image's lock (it is building or removing that image)."""


class ImageMissing(ImageError, LookupError):
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        hint = IMAGES[name].build_hint if name in IMAGES else f"lab image build {name}"
        super().__init__(f"image {name!r} is not in the image store {root}; build it with: {hint}")


class ImagesMissing(ImageError, LookupError):
    """Several images a lab needs, each with the command that builds it: said at once, so that
    building one does not only reveal the next (one line per image)."""

    def __init__(self, missing: list[ImageMissing]) -> None:
        self.missing = missing
        super().__init__("\n".join(str(m) for m in missing))


class ImageInUse(ImageError):
    pass


class ImageToolError(ImageError):
    """An external tool (qemu-img, ...) failed; carries its stderr."""


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name) or ".." in name:
        raise InvalidImageName(
            f"invalid image name {name!r}: use lower-case letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 63 characters)"
        )
    return name


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class ImageManifest(BaseModel):
    """What a golden image is. Stored next to it as ``<name>.json``."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = 1
    name: str
    os: Literal["linux", "windows"]
    build_date: datetime = Field(default_factory=utc_now)
    builder: str = ""
    packages: list[str] = Field(default_factory=list)
    size: int = Field(ge=0, description="bytes of the qcow2 file")
    virtual_size: int | None = Field(default=None, ge=0, description="disk size the guest sees")
    sha256: str
    format: Literal["qcow2"] = "qcow2"
    kernel: str | None = Field(default=None, description="file name in the store (direct kernel boot)")
    initrd: str | None = None
    cmdline: str | None = Field(default=None, description="kernel command line base")
    backing: str | None = Field(default=None, description="name of the image this one is an overlay of")
    notes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", "backing")
    @classmethod
    def _name_ok(cls, v: str | None) -> str | None:
        return None if v is None else validate_name(v)

    @field_validator("build_date")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            return v.replace(tzinfo=timezone.utc)
        return v.astimezone(timezone.utc)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not SHA256.fullmatch(v):
            raise ValueError("sha256 must be 64 lower-case hex digits")
        return v

    @property
    def direct_kernel_boot(self) -> bool:
        return self.kernel is not None


class BackingLayer(BaseModel):
    filename: str
    format: str | None = None
    virtual_size: int | None = None
    actual_size: int | None = None


class ImageInfo(BaseModel):
    """One row of ``ImageStore.images()``: what is on disk, read with qemu-img."""

    name: str
    path: Path
    size: int  # bytes allocated on the host (qemu-img actual-size)
    file_size: int  # st_size of the qcow2 file
    virtual_size: int | None
    backing_chain: list[str]  # file names of the backing files, nearest first
    read_only: bool
    manifest: ImageManifest | None = None
    error: str | None = None


def parse_backing_chain(info: Any) -> list[BackingLayer]:
    """Turn ``qemu-img info --backing-chain --output=json`` into layers, the image first.

    qemu-img prints a JSON list with --backing-chain (a single object without it).
    """
    items = info if isinstance(info, list) else [info]
    layers: list[BackingLayer] = []
    for item in items:
        if not isinstance(item, dict) or "filename" not in item:
            raise ImageToolError(f"unexpected qemu-img info output: {item!r:.200}")
        layers.append(
            BackingLayer(
                filename=item["filename"],
                format=item.get("format"),
                virtual_size=item.get("virtual-size"),
                actual_size=item.get("actual-size"),
            )
        )
    return layers


def sha256_file(path: Path, bufsize: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def qemu_img(*args: str, timeout: float = 600) -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise ImageToolError("qemu-img not found; install it with: apt-get install qemu-utils")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise ImageToolError(f"qemu-img {args[0]} failed: {msg[-1] if msg else proc.returncode}")
    return proc.stdout


class ImageStore:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = images_root() if root is None else Path(root).absolute()

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    def path(self, name: str) -> Path:
        return self.root / f"{validate_name(name)}.qcow2"

    def manifest_path(self, name: str) -> Path:
        return self.root / f"{validate_name(name)}.json"

    def file(self, filename: str) -> Path:
        """Path of a side file (kernel, initrd) named in a manifest."""
        if "/" in filename or filename.startswith("."):
            raise ImageError(f"bad file name in manifest: {filename!r}")
        return self.root / filename

    def kernel_path(self, name: str) -> Path | None:
        m = self.get(name)
        return self.file(m.kernel) if m.kernel else None

    def initrd_path(self, name: str) -> Path | None:
        m = self.get(name)
        return self.file(m.initrd) if m.initrd else None

    def ensure_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        return self.root

    # ------------------------------------------------------------- manifests
    def exists(self, name: str) -> bool:
        return self.path(name).is_file() and self.manifest_path(name).is_file()

    def get(self, name: str) -> ImageManifest:
        mpath = self.manifest_path(name)
        if not self.path(name).is_file() or not mpath.is_file():
            raise ImageMissing(name, self.root)
        try:
            return ImageManifest.model_validate_json(mpath.read_bytes())
        except ValueError as e:
            first = str(e).splitlines()[0]
            raise ImageError(
                f"manifest {mpath} is damaged ({first}); rebuild with: lab image build {name} --force"
            ) from e

    def write_manifest(self, manifest: ImageManifest) -> Path:
        mpath = self.manifest_path(manifest.name)
        write_atomic(mpath, manifest.model_dump_json(indent=2) + "\n", mode=0o644)
        return mpath

    # ------------------------------------------------------------ inspection
    def qemu_info(self, path: Path) -> list[BackingLayer]:
        out = qemu_img("info", "-U", "--backing-chain", "--output=json", str(path))
        return parse_backing_chain(json.loads(out))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.glob("*.qcow2"):
            stem = p.name[: -len(".qcow2")]
            if IMAGE_NAME.fullmatch(stem):
                found.append(stem)
        return sorted(found)

    def images(self) -> list[ImageInfo]:
        infos: list[ImageInfo] = []
        for name in self.names():
            p = self.path(name)
            st = p.stat()
            manifest: ImageManifest | None = None
            error: str | None = None
            try:
                manifest = self.get(name)
            except ImageError as e:
                error = str(e)
            try:
                layers = self.qemu_info(p)
                top = layers[0]
                chain = [Path(layer.filename).name for layer in layers[1:]]
                size = top.actual_size if top.actual_size is not None else st.st_blocks * 512
                vsize = top.virtual_size
            except ImageError as e:
                error = error or str(e)
                chain, size, vsize = [], st.st_blocks * 512, None
            infos.append(
                ImageInfo(
                    name=name,
                    path=p,
                    size=size,
                    file_size=st.st_size,
                    virtual_size=vsize,
                    backing_chain=chain,
                    read_only=(st.st_mode & 0o222) == 0,
                    manifest=manifest,
                    error=error,
                )
            )
        return infos

    def dependents(self, name: str) -> list[str]:
        """Images of this store whose manifest says they are overlays of ``name``."""
        out = []
        for other in self.names():
            if other == name:
                continue
            try:
                if self.get(other).backing == name:
                    out.append(other)
            except ImageError:
                continue
        return out

    def verify(self, name: str) -> bool:
        return sha256_file(self.path(name)) == self.get(name).sha256

    # ------------------------------------------------------------- overlays
    def create_overlay(self, name: str, dest: Path) -> Path:
        """Create a thin qcow2 overlay at ``dest`` backed by the golden image ``name``.

        The backing file is recorded by absolute path. ``dest`` must not exist (a reset
        removes the old overlay first). Cost: about 10 ms and 200 KiB.
        """
        golden = self.path(name)
        if not golden.is_file():
            raise ImageMissing(name, self.root)
        dest = Path(dest).absolute()
        if dest.exists():
            raise FileExistsError(f"overlay {dest} already exists")
        dest.parent.mkdir(parents=True, exist_ok=True)
        qemu_img("create", "-q", "-f", "qcow2", "-b", str(golden), "-F", "qcow2", str(dest))
        return dest

    # ------------------------------------------------------------- building
    def wait_unlocked(self, name: str) -> None:
        """Block until no other process holds ``name``'s lock (a build in progress has ended)."""
        self.ensure_root()
        with open(self.root / f".{validate_name(name)}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            fcntl.flock(f, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive lock for building/removing ``name`` (flock on ``.<name>.lock``)."""
        self.ensure_root()
        lock_path = self.root / f".{validate_name(name)}.lock"
        with open(lock_path, "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ImageBusy(
                    f"image {name!r} is being built or removed by another process ({lock_path})"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def install_file(self, src: Path, filename: str) -> Path:
        """Move ``src`` into the store as ``filename``, read-only, replacing atomically.

        ``src`` is moved (renamed) when it is on the store's filesystem, copied otherwise.
        """
        self.ensure_root()
        dest = self.file(filename)
        tmp = self.root / f".{filename}.partial"
        tmp.unlink(missing_ok=True)
        try:
            os.replace(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            Path(src).unlink()
        os.chmod(tmp, READ_ONLY_MODE)
        os.replace(tmp, dest)
        return dest

    def finish(
        self,
        name: str,
        *,
        os_name: Literal["linux", "windows"],
        builder: str,
        packages: list[str] | None = None,
        kernel: str | None = None,
        initrd: str | None = None,
        cmdline: str | None = None,
        backing: str | None = None,
        notes: dict[str, Any] | None = None,
    ) -> ImageManifest:
        """Make the installed golden image read-only and write its manifest."""
        p = self.path(name)
        os.chmod(p, READ_ONLY_MODE)
        for side in (kernel, initrd):
            if side:
                os.chmod(self.file(side), READ_ONLY_MODE)
        layers = self.qemu_info(p)
        manifest = ImageManifest(
            name=name,
            os=os_name,
            builder=builder,
            packages=sorted(packages or []),
            size=p.stat().st_size,
            virtual_size=layers[0].virtual_size,
            sha256=sha256_file(p),
            kernel=kernel,
            initrd=initrd,
            cmdline=cmdline,
            backing=backing,
            notes=notes or {},
        )
        self.write_manifest(manifest)
        return manifest

    def remove(self, name: str) -> None:
        """Remove a golden image, its manifest and its kernel/initrd.

        Refuses when another image of the store is an overlay of it. Overlays outside the
        store (lab nodes) are not tracked here: remove the labs first.
        """
        validate_name(name)
        deps = self.dependents(name)
        if deps:
            raise ImageInUse(f"image {name!r} is the backing image of {', '.join(deps)}; remove those first")
        paths = [self.path(name), self.manifest_path(name)]
        with contextlib.suppress(OSError, ValueError):
            m = ImageManifest.model_validate_json(self.manifest_path(name).read_bytes())
            paths += [self.file(f) for f in (m.kernel, m.initrd) if f]
        paths += [self.root / f"{name}.vmlinuz", self.root / f"{name}.initrd"]
        if not any(p.exists() for p in paths):
            raise ImageMissing(name, self.root)
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
