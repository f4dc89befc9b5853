"""Build ``guest-vhdx``: an NTFS data disk holding the instructor's VHDX (chapter-2's inner guests).

The course gave every student a sysprepped Windows Server 2003 VHDX to build win2003-1/2/3 from.
Copying gigabytes into each Hyper-V host of each instance would be slow and wasteful; instead the
VHDX goes once into this read-only golden data disk, and every node that needs it (SVR1, SVR2, DC1)
gets a thin qcow2 overlay of it as an extra disk (topology ``disks: [{image: guest-vhdx}]``): seed
000's golden image + overlay, applied to a data disk. Windows sees an MBR disk with one NTFS
partition labelled ``HLGUESTS`` (the lab's ``guest_disk_label``) holding the file under its own name
(the lab's ``guest_disk_file``, ``win2003.vhdx`` unless ``lab up --var guest_disk_file=...``).

Made without mounting anything: mkntfs and ntfscp (ntfs-3g) write the filesystem into a file,
``mbr()`` writes the partition table in front of it, qemu-img makes it a sparse qcow2.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from hyperlab.core.catalog import IMAGES
from hyperlab.images.common import BuildError, PhaseRunner, Progress, build_workspace, require_tools, run_logged
from hyperlab.images.store import ImageManifest, ImageStore

PHASES = ("volume", "copy", "partition", "convert", "manifest")
LABEL = "HLGUESTS"
MiB = 1 << 20
START = MiB  # the partition starts at 1 MiB, as Windows aligns them
SIGNATURES = {b"vhdxfile": "VHDX"}  # MS-VHDX 2.2.1: the file type identifier opens the file


DISK_SIGNATURE = 0x53474C48  # "HLGS": Windows wants a non-zero MBR disk signature to tell disks apart
NTFS = 0x07


def mbr(start: int, sectors: int) -> bytes:
    """A master boot record with one NTFS partition from sector `start`, `sectors` long (LBA only:
    the CHS fields say "beyond CHS", as on any disk larger than 8 GiB)."""
    beyond = bytes((0xFE, 0xFF, 0xFF))
    entry = b"\x00" + beyond + bytes((NTFS,)) + beyond + struct.pack("<II", start, sectors)
    return bytes(440) + struct.pack("<IH", DISK_SIGNATURE, 0) + entry + bytes(48) + b"\x55\xaa"


def check_vhdx(path: Path) -> int:
    """The VHDX's size; a one-line BuildError for a missing file or one that is not a VHDX."""
    if not path.is_file():
        raise BuildError(f"--vhdx {path}: no such file (the sysprepped guest disk to share with the Hyper-V hosts)")
    with path.open("rb") as f:
        head = f.read(8)
    if head not in SIGNATURES:
        raise BuildError(f"--vhdx {path}: not a VHDX file (it does not start with 'vhdxfile'); convert a VHD or "
                         "raw disk with `qemu-img convert -O vhdx`")
    return path.stat().st_size


def volume_size(vhdx_size: int) -> int:
    """The NTFS volume: the file, NTFS's own metadata (a few %), and room, in whole MiB."""
    return (vhdx_size + vhdx_size // 20 + 64 * MiB + MiB - 1) // MiB * MiB


def build_guest_vhdx(store: ImageStore, name: str = "guest-vhdx", progress: Progress | None = None,
                     force: bool = False, *, vhdx: Path | None = None) -> ImageManifest:
    """Build (or return the existing) ``guest-vhdx`` data disk from the instructor's VHDX."""
    if store.exists(name) and not force:
        return store.get(name)
    if vhdx is None:
        raise BuildError(f"{name} is made from your VHDX: lab image build {name} --vhdx PATH")
    size = volume_size(check_vhdx(vhdx))
    limit = IMAGES[name].virtual_size
    if START + size > limit:
        raise BuildError(f"--vhdx {vhdx}: {size // MiB} MiB does not fit the {limit // MiB} MiB disk hyperlab plans")
    require_tools("mkntfs", "ntfscp", "qemu-img")
    runner = PhaseRunner(progress)
    with build_workspace(store, name, runner, keep_work=False) as (work, log):
        part = work / "part.raw"
        with runner.phase("volume"):
            with part.open("wb") as f:
                f.truncate(size)
            # -p/-H/-S: where the partition starts, so Windows trusts the boot sector's geometry
            run_logged(["mkntfs", "--quiet", "--fast", "--force", "--label", LABEL, "-p", str(START // 512),
                        "-H", "255", "-S", "63", str(part)], log, what="mkntfs")
        with runner.phase("copy"):
            run_logged(["ntfscp", "--force", str(part), str(vhdx), "/" + vhdx.name], log, what="ntfscp")
        with runner.phase("partition"):
            disk = work / "disk.raw"
            with disk.open("wb") as out, part.open("rb") as src:
                out.truncate(START)
                out.seek(START)
                shutil.copyfileobj(src, out, 16 * MiB)
            part.unlink()
            with disk.open("r+b") as out:
                out.write(mbr(START // 512, size // 512))
        with runner.phase("convert"):
            staged = work / "disk.qcow2"
            run_logged(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(disk), str(staged)], log,
                       what="qemu-img convert")
        with runner.phase("manifest"):
            store.manifest_path(name).unlink(missing_ok=True)
            store.install_file(staged, f"{name}.qcow2")
            manifest = store.finish(name, os_name="windows", builder="guest-vhdx",
                                    notes={"label": LABEL, "file": vhdx.name, "vhdx_bytes": vhdx.stat().st_size,
                                           "partition_start": START})
        manifest.notes["phase_seconds"] = dict(runner.timings)
        store.write_manifest(manifest)
    return manifest
