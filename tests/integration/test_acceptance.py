"""`lab acceptance chapter-2` for real, up to the Windows build's first boot (no Windows boots here).

The ISO is laid out like Microsoft's and its install.wim carries the recorded image list of the
Windows Server 2022 evaluation media, so every check before the boot is the real one; it has no
boot loader, so the build domain boots into the UEFI shell under OVMF and its screen stands
still: the screenshot watchdog stops the build after `--frozen-after 1` minute, the run stops
there, and the archive must say so and hold what a maintainer needs. The guest-vhdx build before
it is real (a qemu-img VHDX). The image store is the test's own: nothing reaches the suite's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.unit.winmedia import recorded_images_xml, windows_like_iso

pytestmark = [pytest.mark.vm, pytest.mark.libvirtd]

ROOT = Path(__file__).resolve().parents[2]
BUILD_DOMAIN = "hl-build-windows-server-2022"


@pytest.fixture()
def work() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hyperlab-acceptance-", dir="/var/tmp"))
    os.chmod(d, 0o755)  # QEMU (its own user) reads the ISO from here
    yield d
    shutil.rmtree(d, ignore_errors=True)


def remove_build_domain(conn: Any) -> None:
    try:
        domain = conn.lookupByName(BUILD_DOMAIN)
    except libvirt.libvirtError:
        return
    if domain.isActive():
        domain.destroy()
    domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def test_acceptance_runs_to_the_first_boot_and_archives_what_stopped_it(conn: Any, work: Path) -> None:
    assert shutil.which("genisoimage"), "genisoimage is missing: bash scripts/setup-host.sh"
    iso = windows_like_iso(work, recorded_images_xml())
    vhdx = work / "guest.vhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", str(vhdx), "64M"], check=True)
    store, out = work / "store", work / "out"
    env = {**os.environ, "HYPERLAB_IMAGES": str(store), "HYPERLAB_ACCEL": "tcg"}
    remove_build_domain(conn)
    try:
        run = subprocess.run([sys.executable, "-m", "hyperlab", "acceptance", "chapter-2", "--iso", str(iso),
                              "--vhdx", str(vhdx), "--frozen-after", "1", "--out", str(out)],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    finally:
        remove_build_domain(conn)
    assert run.returncode == 1, run.stdout + run.stderr
    archives = list(out.glob("hyperlab-acceptance-chapter-2-*.tar.gz"))
    assert len(archives) == 1 and str(archives[0]) in run.stdout
    assert "failed: image-windows-server-2022 (exit 1)" in run.stdout

    with tarfile.open(archives[0]) as tar:
        top = tar.getnames()[0]
        files = {name[len(top) + 1:]: tar for name in tar.getnames() if name != top}
        read = lambda name: tar.extractfile(f"{top}/{name}").read()  # noqa: E731
        summary = json.loads(read("summary.json"))
        records = {r["name"]: r for r in summary["records"]}
        assert summary["verdict"] == "failed: image-windows-server-2022 (exit 1)"
        assert records["doctor"]["exit_code"] is not None  # it ran; its verdict on this host is kept, not judged
        assert records["image-guest-vhdx"]["exit_code"] == 0
        assert records["image-windows-server-2022"]["exit_code"] == 1
        for later in ("up", "check-before", "solve", "check-after", "down"):
            assert records[later]["exit_code"] is None and records[later]["note"].startswith("needs "), later
        build_log = read(records["image-windows-server-2022"]["log"]).decode()
        assert "the screen has not changed for" in build_log, build_log[-2000:]
        screenshots = sorted(n for n in files if n.startswith("images/windows-server-2022.screen-"))
        assert screenshots, sorted(files)
        named = build_log.split("the newest screenshot is ", 1)[1].split(";", 1)[0]
        assert f"images/{Path(named).name}" in files, "the PNG the error names is in the archive"
        assert read(screenshots[-1]).startswith(b"\x89PNG")
        versions = json.loads(read("versions.json"))
        assert {"hyperlab", "python", "kernel", "libvirt", "qemu", "cpu"} <= set(versions)
        assert json.loads(read("doctor.json"))["lab"] == "chapter-2"
        assert "images/hl-build-windows-server-2022.log" in files  # QEMU's own log of the build domain
        assert "README.txt" in files
        whole = b"".join(read(n) for n in files if not n.endswith("/") and tar.getmember(f"{top}/{n}").isfile())
    password = (store / ".windows-server-2022.build" / "password").read_text().strip()
    assert password and password.encode() not in whole, "the build's password must not be in the archive"
