"""`lab acceptance`: every mistake refused before anything runs, and the run's plan and verdict.

The run itself, on real libvirt up to the Windows build's first boot, is
tests/integration/test_acceptance.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hyperlab.core.load import load_lab
from hyperlab.ops.acceptance import AcceptanceOptions, Record, commands, manual_steps, redacted, verdict
from tests.unit.clihelp import run_lab
from tests.unit.winmedia import recorded_images_xml, windows_like_iso

ROOT = Path(__file__).resolve().parents[2]
needs_genisoimage = pytest.mark.skipif(shutil.which("genisoimage") is None, reason="genisoimage not installed")


@pytest.fixture()
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "store"
    monkeypatch.setenv("HYPERLAB_IMAGES", str(store))
    return store


def refused(result: object, *words: str) -> str:
    line = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.exit_code == 2, line  # type: ignore[attr-defined]
    assert "\n" not in line and "Traceback" not in line, line
    for word in words:
        assert word in line, line
    return line


def vhdx(tmp_path: Path) -> Path:
    path = tmp_path / "guest.vhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", str(path), "16M"], check=True)
    return path


def test_without_an_iso_it_is_refused_and_nothing_is_made(empty_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    refused(run_lab("acceptance", "chapter-2", "--out", str(out)), "windows-server-2022", "--iso PATH")
    refused(run_lab("acceptance", "chapter-2", "--iso", str(tmp_path / "nope.iso"), "--out", str(out)),
            "nope.iso", "no such file")
    not_iso = tmp_path / "notes.txt"
    not_iso.write_text("not an ISO")
    refused(run_lab("acceptance", "chapter-2", "--iso", str(not_iso), "--out", str(out)), "not an ISO image")
    assert not out.exists() and not empty_store.exists()


@needs_genisoimage
def test_every_other_argument_is_checked_before_anything_runs(empty_store: Path, tmp_path: Path) -> None:
    iso = windows_like_iso(tmp_path, recorded_images_xml())
    out = tmp_path / "out"
    base = ("acceptance", "chapter-2", "--iso", str(iso))
    refused(run_lab(*base, "--out", str(out)), "guest-vhdx", "--vhdx PATH")
    refused(run_lab(*base, "--vhdx", str(iso), "--out", str(out)), "not a VHDX")
    good = str(vhdx(tmp_path))
    refused(run_lab(*base, "--vhdx", good, "--edition", "enterprise", "--out", str(out)), "--edition")
    refused(run_lab(*base, "--vhdx", good, "--virtio-iso", str(tmp_path / "virtio.iso")), "virtio.iso", "no such file")
    a_file = tmp_path / "file"
    a_file.write_text("")
    refused(run_lab(*base, "--vhdx", good, "--out", str(a_file / "sub")), "--out", "is a file")
    refused(run_lab(*base, "--vhdx", good, "--frozen-after", "0"), "--frozen-after")
    refused(run_lab("acceptance", "chapter-2-linux", "--iso", str(iso)), "no Windows image")
    refused(run_lab("acceptance", "chapter-2-linux", "--vhdx", good), "no guest-vhdx")
    refused(run_lab("acceptance", "no-such-lab", "--iso", str(iso)), "no-such-lab")
    assert not out.exists() and not empty_store.exists()


# ------------------------------------------------------------------------------ the plan


def test_the_run_is_the_commands_a_user_would_type(tmp_path: Path) -> None:
    loaded = load_lab(str(ROOT / "labs" / "chapter-2"))
    options = AcceptanceOptions(lab="chapter-2", iso=Path("/m/win.iso"), virtio_iso=Path("/m/virtio.iso"),
                                vhdx=Path("/m/guest.vhdx"), frozen_after=30)
    shown = [c.shown() for c in commands(loaded, options)]
    assert shown == [
        "lab doctor chapter-2 --json",
        "lab image build guest-vhdx --vhdx /m/guest.vhdx",
        "lab image build windows-server-2022 --iso /m/win.iso --edition standard --virtio-iso /m/virtio.iso "
        "--frozen-after 30",
        "lab up chapter-2 --instance acceptance",
        "lab check chapter-2 --instance acceptance --json",
        "lab solve chapter-2 --instance acceptance",
        "lab check chapter-2 --instance acceptance --json",
        "lab down chapter-2 --instance acceptance",
    ]
    by_name = {c.name: c for c in commands(loaded, options)}
    assert by_name["up"].needs == ("image-guest-vhdx", "image-windows-server-2022")
    kept = commands(loaded, AcceptanceOptions(lab="chapter-2", iso=Path("/m/win.iso"), keep=True))
    assert [c.name for c in kept][-1] == "check-after"  # --keep: no down
    assert "image-guest-vhdx" not in {c.name for c in kept}  # no --vhdx: the one already built is used
    odd = commands(loaded, AcceptanceOptions(lab="chapter-2", iso=Path("/m/a b;rm -rf ~.iso")))
    assert "'/m/a b;rm -rf ~.iso'" in [c for c in odd if c.name == "image-windows-server-2022"][0].shown()


def test_the_verdict_is_passed_only_when_every_step_passes_after_the_solutions() -> None:
    def records(**codes: int | None) -> list[Record]:
        return [Record(name, name, exit_code=code, note="needs up" if code is None else "") for name, code in codes.items()]

    ran = records(doctor=1, up=0, solve=0, **{"check-before": 1, "check-after": 0, "down": 0})
    all_pass = {"steps": [{"id": "a", "status": "PASS"}, {"id": "b", "status": "PASS"}]}
    assert verdict(ran, all_pass) == ("passed", 2, 2)  # a doctor warning or FAIL does not decide
    one_fails = {"steps": [{"id": "a", "status": "PASS"}, {"id": "b", "status": "FAIL"}]}
    failed_check = records(up=0, solve=0, **{"check-after": 1})
    assert verdict(failed_check, one_fails) == ("failed: 1 of 2 steps pass after the solutions", 1, 2)
    assert verdict(records(**{"image-windows-server-2022": 1, "up": None}), None)[0] == \
        "failed: image-windows-server-2022 (exit 1)"
    assert verdict(records(up=0, solve=3, **{"check-after": 0}), all_pass)[0] == "failed: solve (exit 3)"
    assert verdict(records(up=0, solve=0), None)[0] == "failed: check-after gave no result"
    assert verdict(records(up=0, solve=0, **{"check-after": 0}), {"steps": "garbage"})[0] == \
        "failed: check-after gave no result"
    # steps done by hand (no reference solution) are kept, not judged; the rest must pass
    by_hand = {"steps": [{"id": "a", "status": "PASS"}, {"id": "telnet", "status": "FAIL"}]}
    assert verdict(failed_check, by_hand, frozenset({"telnet"})) == ("passed", 1, 1)
    assert verdict(failed_check, by_hand)[0] == "failed: 1 of 2 steps pass after the solutions"
    only_manual = {"steps": [{"id": "telnet", "status": "FAIL"}]}
    assert verdict(failed_check, only_manual, frozenset({"telnet"}))[0].startswith("failed: 0 of 0")


def test_chapter_2s_steps_inside_the_2003_guests_are_the_ones_done_by_hand() -> None:
    loaded = load_lab(str(ROOT / "labs" / "chapter-2"))
    assert manual_steps(loaded) == ["nat-addressing", "rras-nat", "telnet", "rdp-35000", "port-forwards"]


def test_credentials_are_cut_out_of_qemu_logs() -> None:
    line = ("-smbios type=11,value=io.systemd.credential.binary:hyperlab.secrets=c2VjcmV0,"
            "value=io.systemd.credential:hostname=DC1 -name guest=hl")
    cut = redacted(line)
    assert "c2VjcmV0" not in cut and "DC1" not in cut
    assert cut.count("<redacted>") == 2 and cut.endswith("-name guest=hl")
