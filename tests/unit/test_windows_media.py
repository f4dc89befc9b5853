"""Answer media made by the real tool (xorriso) and read back; Windows ISO recognition; the CLI.

The Windows-like ISO is made with `genisoimage -udf` (UDF beside ISO 9660, as oscdimg writes)
holding a small WIM whose header and XML image list follow the WIM layout (rhXmlData at byte 72,
UTF-16LE XML with IMAGE/NAME and WINDOWS/EDITIONID, INSTALLATIONTYPE).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hyperlab.images.answer_media import write_iso
from hyperlab.images.isofs import (
    EditionError,
    IsoError,
    IsoImage,
    NotWindowsMedia,
    WimImage,
    inspect_windows_iso,
    parse_wim_xml,
    select_image,
)
from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts, plan
from hyperlab.render.unattend import decode_password
from hyperlab.ops.windows_media import ensure_unattend_media, oem_files
from hyperlab.render.node_media import media_files
from tests.unit.clihelp import run_lab
from tests.unit.winmedia import IMAGES_XML, fake_wim, windows_like_iso

ROOT = Path(__file__).resolve().parents[2]
needs_xorriso = pytest.mark.skipif(shutil.which("xorriso") is None, reason="xorriso not installed (scripts/packages/host.txt)")
needs_genisoimage = pytest.mark.skipif(shutil.which("genisoimage") is None, reason="genisoimage not installed")

# ------------------------------------------------------------------------------ answer media


@needs_xorriso
def test_answer_iso_holds_the_files_and_is_rewritten_only_when_they_change(tmp_path: Path) -> None:
    files = {"autounattend.xml": b"<unattend/>", "hyperlab/build.ps1": b"Write-Host hi\r\n" * 500,
             "hyperlab/oem/install.bat": b"@echo off\r\n"}
    iso = tmp_path / "answer.iso"
    assert write_iso(files, iso, "HLANSWER") is True
    assert iso.stat().st_mode & 0o777 == 0o600
    with IsoImage(iso) as image:
        found = image.files()
        assert image.filesystem == "joliet"
        for name, data in files.items():
            assert image.read(found[name.lower()]) == data
    # the real tool's own listing agrees, with the names' case as Windows will see them
    listing = subprocess.run(["xorriso", "-indev", str(iso), "-find", "/", "-type", "f"],
                             capture_output=True, text=True, check=True).stdout
    for name in files:
        assert f"'/{name}'" in listing
    before = iso.read_bytes()
    assert write_iso(files, iso, "HLANSWER") is False  # same files: byte-identical, not rewritten
    assert iso.read_bytes() == before
    assert write_iso({**files, "x.txt": b"1"}, iso, "HLANSWER") is True


# ------------------------------------------------------------------------------ ISO recognition


@needs_genisoimage
def test_windows_media_are_recognised_through_udf_and_list_their_editions(tmp_path: Path) -> None:
    iso = windows_like_iso(tmp_path)
    with IsoImage(iso) as image:
        assert "sources/install.wim" in image.files()
        assert image.filesystem == "udf"
    media = inspect_windows_iso(iso)
    assert media.install_image == "sources/install.wim"
    assert [i.index for i in media.images] == [1, 2, 3, 4]
    assert select_image(media.images, "standard") == 2
    assert select_image(media.images, "datacenter-core") == 3
    assert select_image(media.images, "Windows Server 2022 SERVERDATACENTER") == 4
    assert select_image(media.images, "1") == 1
    with pytest.raises(EditionError, match="no image 9"):
        select_image(media.images, "9")


@needs_genisoimage
def test_media_laid_out_as_microsofts_are_read_through_udf_alone(tmp_path: Path) -> None:
    """oscdimg -u2's layout: every file on the UDF side only; ISO 9660 (what xorriso reads) sees none."""
    root = tmp_path / "media"
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "install.wim").write_bytes(fake_wim())
    (root / "setup.exe").write_bytes(b"MZ")
    iso = tmp_path / "ms.iso"
    subprocess.run(["genisoimage", "-quiet", "-udf", "-o", str(iso), "-hide", "*", "-hide", "sources", str(root)], check=True)
    listing = subprocess.run(["xorriso", "-indev", str(iso), "-find", "/", "-type", "f"],
                             capture_output=True, text=True, check=True).stdout
    assert "install.wim" not in listing  # the ISO 9660 side is empty, as on Microsoft's media
    media = inspect_windows_iso(iso)
    assert (media.filesystem, media.install_image) == ("udf", "sources/install.wim")
    assert [i.index for i in media.images] == [1, 2, 3, 4]


@needs_genisoimage
def test_a_truncated_iso_is_refused_in_one_line(tmp_path: Path) -> None:
    whole = windows_like_iso(tmp_path).read_bytes()
    cut = tmp_path / "cut.iso"
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(IsoError) as info:
        inspect_windows_iso(cut)
    assert str(cut) in str(info.value) and "\n" not in str(info.value)


@needs_xorriso
def test_an_iso_without_install_image_is_refused_in_one_line(tmp_path: Path) -> None:
    iso = tmp_path / "other.iso"
    write_iso({"README.TXT": b"This disc contains a UDF file system"}, iso, "OTHER")
    with pytest.raises(NotWindowsMedia) as info:
        inspect_windows_iso(iso)
    assert "no sources/install.wim" in str(info.value) and "\n" not in str(info.value)


def test_a_file_that_is_no_iso_at_all_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"\x00" * 100_000)
    with pytest.raises(IsoError, match="not an ISO image"):
        inspect_windows_iso(junk)


def test_editions_without_a_readable_list_use_microsofts_usual_indexes() -> None:
    assert select_image((), "standard") == 2 and select_image((), "datacenter") == 4
    with pytest.raises(EditionError):
        select_image((), "enterprise")
    only_core = [WimImage(1, "x", "ServerStandard", "Server Core")]
    with pytest.raises(EditionError, match="no standard image"):
        select_image(only_core, "standard")
    assert parse_wim_xml(IMAGES_XML.encode("utf-16-le"))[3].edition_id == "ServerDatacenterEval"


# ------------------------------------------------------------------------------ CLI


def test_missing_iso_is_one_line_exit_2_and_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("HYPERLAB_IMAGES", str(store))
    result = run_lab("image", "build", "windows-server-2022", "--iso", str(tmp_path / "nope.iso"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.iso" in lines[0] and "no such file" in lines[0]
    assert not store.exists()
    result = run_lab("image", "build", "windows-server-2022")
    assert result.exit_code == 2 and "--iso PATH" in result.stderr
    assert not store.exists()


@needs_xorriso
def test_a_non_windows_iso_is_refused_before_anything_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("HYPERLAB_IMAGES", str(store))
    iso = tmp_path / "debian.iso"
    write_iso({"README.TXT": b"not windows"}, iso, "DEBIAN")
    result = run_lab("image", "build", "windows-server-2022", "--iso", str(iso), "--virtio-iso", str(iso))
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "not Windows install media" in result.stderr
    assert not store.exists()


@needs_xorriso
def test_dry_run_writes_the_answer_media_it_would_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLAB_IMAGES", str(tmp_path / "store"))
    placeholder = tmp_path / "win.iso"
    placeholder.write_bytes(b"content is not read by --dry-run")
    out = tmp_path / "out"
    result = run_lab("image", "build", "windows-server-2025", "--iso", str(placeholder), "--dry-run", "--out", str(out),
                     "--edition", "datacenter", "--locale", "ko-KR")
    assert result.exit_code == 0, result.stderr
    media = out / "windows-server-2025.answer.iso"
    assert str(media) in result.stdout
    with IsoImage(media) as image:
        files = image.files()
        assert {"autounattend.xml", "hyperlab/build.ps1", "hyperlab/sysprep.ps1"} <= set(files)
        xml = image.read(files["autounattend.xml"]).decode()
        sysprep = image.read(files["hyperlab/sysprep.ps1"]).decode()
    assert "<Value>4</Value>" in xml and "2k25" in xml and "ko-KR" in xml
    assert "/generalize" in sysprep and "/oobe" in sysprep and "/shutdown" in sysprep and "/mode:vm" in sysprep
    password = (out / "password").read_text()
    assert password not in xml and password not in result.stdout + result.stderr
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------------------ per-node media


def test_chapter_2_nodes_get_their_own_specialization(tmp_path: Path) -> None:
    loaded = load_lab(str(ROOT / "labs" / "chapter-2"))
    p = plan(loaded, "t1", HostFacts(instances_dir=tmp_path))
    svr1 = p.node("SVR1")
    assert svr1.unattend_iso is not None
    files = media_files(svr1, loaded, "Pa55-word", oem_files(loaded.folder, "SVR1"))
    xml = files["Autounattend.xml"].decode()
    assert files["unattend.xml"] == files["Autounattend.xml"]
    assert "<ComputerName>SVR1</ComputerName>" in xml and "192.168.1.110/24" in xml and "kosa.vm" in xml
    assert "Pa55-word" not in xml and "Pa55-word" not in "".join(v.decode(errors="replace") for v in files.values())
    value = xml.split("<AdministratorPassword>")[1].split("<Value>")[1].split("</Value>")[0]
    assert decode_password(value, "AdministratorPassword") == "Pa55-word"
    assert b"C:\\hyperlab\\ready" in files["hyperlab/firstboot.ps1"]  # deploy.READY_MARKER["windows"]
    assert b"firstboot.ps1" in files["hyperlab/SetupComplete.cmd"]


@needs_xorriso
def test_media_are_written_for_windows_nodes_only_and_once(tmp_path: Path) -> None:
    from hyperlab.guest.runner import READY_MARKER

    assert READY_MARKER["windows"] == "C:\\hyperlab\\ready"
    loaded = load_lab(str(ROOT / "labs" / "chapter-2"))
    p = plan(loaded, "t1", HostFacts(instances_dir=tmp_path))
    written = ensure_unattend_media(loaded, p, {"domain-admin": "Pa55-word"})
    assert sorted(path.name for path in written) == ["DC1.unattend.iso", "SVR1.unattend.iso", "SVR2.unattend.iso"]
    assert ensure_unattend_media(loaded, p, {"domain-admin": "Pa55-word"}) == []
    with IsoImage(p.node("DC1").unattend_iso) as image:  # type: ignore[arg-type]
        assert "192.168.1.100/24" in image.read(image.files()["autounattend.xml"]).decode()


def test_every_edition_the_docs_show_picks_its_image() -> None:
    """The guides pass Setup's DISPLAYNAME to --edition; the reader once compared NAME only."""
    import re

    xml = (ROOT / "tests" / "data" / "recorded" / "windows" / "server-2022-eval-images.xml").read_text(encoding="utf-8")
    images = parse_wim_xml(("\ufeff" + xml[xml.index("<WIM>"):]).encode("utf-16-le"))
    shown = {m for path in (ROOT / "docs" / "guide").glob("*.md")
             for m in re.findall(r'--edition "([^"]+)"', path.read_text(encoding="utf-8"))}
    assert shown, "the guides show no --edition"
    for edition in shown:
        index = select_image(images, edition)
        assert images[index - 1].display_name.lower() == edition.lower() or images[index - 1].name.lower() == edition.lower()
    assert select_image(images, "Windows Server 2022 Standard Evaluation (Desktop Experience)") == 2
    assert select_image(images, "windows server 2022 serverdatacenter") == 4
    assert select_image(images, "standard-core") == 1 and select_image(images, "datacenter") == 4
