"""Hyper-V hosts on KVM: the nested profile in the domain XML, `lab doctor`'s nested checks, and the
hard reset of a hung reboot said in the progress output."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hyperlab.ops import doctor_nesting
from hyperlab.core.needs import lab_needs
from hyperlab.ops.doctor import check_nested
from hyperlab.render.libvirt_xml import domain_xml
from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts, plan
from hyperlab.guest.reboots import HANG_TIMEOUT, RebootWatch, wait_back

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("vendor,feature", [("intel", "vmx"), ("amd", "svm")])
def test_hyperv_hosts_get_the_nested_profile(vendor: str, feature: str, tmp_path: Path) -> None:
    loaded = load_lab(str(ROOT / "labs" / "chapter-2"))
    p = plan(loaded, "t1", HostFacts(accel="kvm", cpu_vendor=vendor, instances_dir=tmp_path))  # type: ignore[arg-type]
    svr1 = ET.fromstring(domain_xml(p, p.node("SVR1")))
    cpu = svr1.find("cpu")
    assert cpu is not None and cpu.get("mode") == "host-passthrough"
    assert cpu.find(f"feature[@name='{feature}']").get("policy") == "require"  # type: ignore[union-attr]
    hyperv = svr1.find("features/hyperv")
    assert hyperv is not None and hyperv.get("mode") == "custom"
    assert (hyperv.find("evmcs") is not None) == (vendor == "intel")
    assert svr1.find("os").get("firmware") == "efi"  # type: ignore[union-attr]
    cdrom = svr1.find("devices/disk[@device='cdrom']/source")
    assert cdrom is not None and cdrom.get("file", "").endswith("SVR1.unattend.iso")
    dc1 = ET.fromstring(domain_xml(p, p.node("DC1")))
    assert dc1.find("cpu/feature") is None  # not nested: no vmx/svm asked of the host


def test_doctor_says_hyperv_cannot_run_under_emulation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs = lab_needs(load_lab(str(ROOT / "labs" / "chapter-2")))
    assert needs.nested_windows == ("SVR1", "SVR2")
    finding = check_nested(needs, "tcg", tmp_path)
    assert finding.level == "fail" and "Hyper-V" in finding.detail and finding.fix
    monkeypatch.setattr(doctor_nesting, "cpu_vendor", lambda: "intel")
    (tmp_path / "kvm_intel" / "parameters").mkdir(parents=True)
    (tmp_path / "kvm_intel" / "parameters" / "nested").write_text("N\n")
    off = check_nested(needs, "kvm", tmp_path)
    assert off.level == "fail" and off.fix is not None and "nested=1" in off.fix and "\n" not in off.line()


class HungDomain:
    def __init__(self) -> None:
        self.resets = 0

    def isActive(self) -> bool:
        return True

    def reset(self, _flags: int) -> None:
        self.resets += 1


class Channel:
    node = "SVR1"

    def __init__(self) -> None:
        self.domain = HungDomain()

    def ping(self) -> bool:
        return self.domain.resets > 0  # comes back only after the hard reset


def test_a_hung_reboot_is_reset_and_the_progress_says_so() -> None:
    channel = Channel()
    said: list[str] = []
    now = [0.0]
    wait_back(channel, RebootWatch("SVR1", 0.0, "down"), said.append, clock=lambda: now[0],
              sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert channel.domain.resets == 1 and now[0] > HANG_TIMEOUT
    assert said == ["reboot hung (known with Hyper-V under OVMF): hard reset 1/2"]
