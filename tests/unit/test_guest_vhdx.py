"""guest-vhdx: the NTFS data disk that carries the instructor's VHDX to chapter-2's Hyper-V hosts.

The build runs for real (mkntfs, ntfscp, qemu-img; no Windows needed) on a small stand-in VHDX, and
the result is read back with ntfs-3g's own tools: the partition table Windows will read, the volume
label the start state looks for, and the file, byte for byte."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from hyperlab.images.common import BuildError
from hyperlab.images.guest_vhdx import LABEL, START, build_guest_vhdx, check_vhdx, mbr, volume_size
from hyperlab.images.store import ImageStore
from tests.unit.clihelp import run_lab

MiB = 1 << 20


def test_mbr_has_one_ntfs_partition_where_the_volume_starts() -> None:
    record = mbr(2048, 100_000)
    assert len(record) == 512 and record[510:] == b"\x55\xaa"
    status, kind, first, count = record[446], record[450], *struct.unpack_from("<II", record, 454)
    assert (status, kind, first, count) == (0, 0x07, 2048, 100_000)
    assert struct.unpack_from("<I", record, 440)[0] != 0, "Windows tells disks apart by a non-zero signature"
    assert record[462:510] == bytes(48), "one partition only"


def test_volume_leaves_room_and_is_whole_mebibytes() -> None:
    assert volume_size(3 * MiB) % MiB == 0 and volume_size(3 * MiB) >= 3 * MiB + 64 * MiB
    assert volume_size(10 << 30) > (10 << 30) * 1.04


def test_not_a_vhdx_is_one_line(tmp_path: Path) -> None:
    vhd = tmp_path / "old.vhd"
    vhd.write_bytes(b"conectix" + bytes(504))
    with pytest.raises(BuildError, match="not a VHDX file"):
        check_vhdx(vhd)
    with pytest.raises(BuildError, match="no such file"):
        check_vhdx(tmp_path / "missing.vhdx")
    result = run_lab("image", "build", "guest-vhdx", "--vhdx", str(vhd))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "not a VHDX file" in result.stderr


@pytest.mark.images
def test_build_puts_the_vhdx_on_a_labelled_ntfs_partition(tmp_path: Path) -> None:
    for tool in ("mkntfs", "ntfscp", "ntfsls", "ntfscat", "ntfslabel"):
        assert shutil.which(tool), f"{tool} is missing: bash scripts/setup-host.sh installs ntfs-3g"
    vhdx = tmp_path / "win2003.vhdx"
    vhdx.write_bytes(b"vhdxfile" + os.urandom(3 * MiB))
    store = ImageStore(tmp_path / "store")
    manifest = build_guest_vhdx(store, vhdx=vhdx)
    assert manifest.notes["label"] == LABEL and manifest.notes["file"] == "win2003.vhdx"
    assert os.stat(store.path("guest-vhdx")).st_mode & 0o222 == 0, "golden: read-only"

    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(store.path("guest-vhdx")), str(raw)], check=True)
    data = raw.read_bytes()
    first, count = struct.unpack_from("<II", data, 454)
    assert first * 512 == START and data[450] == 0x07
    part = tmp_path / "part.raw"
    part.write_bytes(data[first * 512:(first + count) * 512])
    label = subprocess.run(["ntfslabel", "--force", str(part)], capture_output=True, text=True, check=True).stdout.strip()
    assert label == LABEL
    listing = subprocess.run(["ntfsls", "--force", str(part)], capture_output=True, text=True, check=True).stdout.split()
    assert "win2003.vhdx" in listing
    copied = subprocess.run(["ntfscat", "--force", str(part), "/win2003.vhdx"], capture_output=True, check=True).stdout
    assert copied == vhdx.read_bytes()
    # a second build reuses the store's copy
    assert build_guest_vhdx(store, vhdx=vhdx).build_date == manifest.build_date
