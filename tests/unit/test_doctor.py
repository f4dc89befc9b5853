"""The pure parts of `lab doctor`: what a lab needs, how findings read, the checks' decisions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hyperlab.ops import doctor, doctor_nesting
from hyperlab.host.accel import AccelReport
from hyperlab.cli import doctor as doctor_command
from hyperlab.cli.doctor import as_json, fix_lines, render_table
from hyperlab.cli.main import app
from hyperlab.core.needs import DISK_BASE, DISK_PER_NODE, GiB, MiB, Needs, disk_needed, lab_needs, memory_needed
from hyperlab.ops.doctor import Finding, any_failed, can_read_write, check_bridge_netfilter, check_memory, check_nested, check_ovmf, kvm_finding, qemu_run_as
from hyperlab.core.units import human_size
from hyperlab.core.load import load_lab

ROOT = Path(__file__).resolve().parents[2]
HUNG = AccelReport("tcg", "hung", "/dev/kvm exists but a test guest hung under KVM (no kernel output after 15 s)",
                   tested=True, seconds=15.0)
ABORTED = AccelReport("tcg", "failed", "QEMU cannot use KVM: qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: "
                      "kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.", tested=True, seconds=0.2)


def needs(**kw: object) -> Needs:
    base: dict[str, object] = {"nodes": ("A", "B"), "memory": 2 * GiB, "images": ("debian-12",), "nested": (),
                               "uefi": (), "secure_boot": (), "tpm": ()}
    base.update(kw)
    return Needs(**base)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- lab needs


def test_needs_of_chapter_2_linux() -> None:
    n = lab_needs(load_lab("chapter-2-linux", ROOT))
    assert n.nodes == ("DC1", "SVR1", "SVR2", "ROUTER", "INNER1", "INNER2")
    assert n.memory == (768 + 1024 + 1024 + 3 * 512) * MiB
    assert n.images == ("debian-12", "ticker")  # ticker: the nested guests vm1, vm3 ... inside SVR1/SVR2
    assert n.nested == ("SVR1", "SVR2")
    assert (n.uefi, n.secure_boot, n.tpm) == ((), (), ())


def test_needs_of_chapter_2() -> None:
    n = lab_needs(load_lab("chapter-2", ROOT))
    assert n.nodes == ("DC1", "SVR1", "SVR2")
    assert n.memory == (4 + 8 + 8) * GiB
    # guest-vhdx: the NTFS disk with the instructor's VHDX, built once from their file
    assert n.images == ("guest-vhdx", "windows-server-2022")
    assert n.nested == ("SVR1", "SVR2")
    assert n.uefi == ("DC1", "SVR1", "SVR2")


def test_disk_need_is_a_base_plus_a_share_per_node_plus_missing_builds() -> None:
    assert (DISK_BASE, DISK_PER_NODE) == (2 * GiB, 512 * MiB)
    six = needs(nodes=tuple("ABCDEF"))  # checkpoint_memory 0: as UEFI nodes, which keep no checkpoint
    assert disk_needed(six) == (5 * GiB, 0)
    assert disk_needed(needs(nodes=("A", "B", "C")), ["windows-server-2022"]) == (3 * GiB + 512 * MiB, 20 * GiB)
    assert disk_needed(needs(nodes=("A",)), ["debian-12", "tiny"]) == (2 * GiB + 512 * MiB, 2 * GiB + 256 * MiB)


def test_disk_need_counts_the_memory_a_start_checkpoint_keeps_in_the_overlay() -> None:
    n = lab_needs(load_lab("chapter-2-linux", ROOT))
    assert n.checkpoint_memory == n.memory  # no UEFI or TPM node: every one keeps its `start`
    assert disk_needed(n)[0] == DISK_BASE + 6 * DISK_PER_NODE + n.memory
    windows = lab_needs(load_lab("chapter-2", ROOT))
    assert windows.checkpoint_memory == 0  # all UEFI: reset clean, no memory in the overlays


def test_memory_need_adds_qemu_overhead_per_guest_more_under_tcg() -> None:
    n = needs(nodes=("A", "B", "C"), memory=3 * GiB)
    assert memory_needed(n, "tcg") == 3 * GiB + 3 * 128 * MiB
    assert memory_needed(n, "kvm") == 3 * GiB + 3 * 64 * MiB


def test_memory_check_fails_below_the_need_with_the_shortfall() -> None:
    n = needs(nodes=("A",), memory=1 * GiB)
    assert check_memory(n, "tcg", available=2 * GiB).ok
    short = check_memory(n, "tcg", available=1 * GiB)
    assert short.level == "fail"
    assert short.detail == "1 GiB available; need ~1.1 GiB (1 node 1 GiB + QEMU 128 MiB each under tcg)"
    assert short.fix is not None and short.fix.startswith("free 128 MiB of memory")


@pytest.mark.parametrize(("size", "text"), [(512 * MiB, "512 MiB"), (5 * GiB, "5 GiB"), (int(20.375 * GiB), "20.4 GiB"),
                                            (int(77.7 * GiB), "77.7 GiB"), (300, "300 B")])
def test_sizes_read_like_people_write_them(size: int, text: str) -> None:
    assert human_size(size) == text


# ------------------------------------------------------------------------- findings


def test_finding_levels_follow_ok_unless_given() -> None:
    assert Finding(True, "x", "d").level == "ok"
    assert Finding(False, "x", "d").level == "fail"
    assert Finding(False, "x", "d", level="warn").label == "warn"
    assert Finding(True, "x", "d", level="info").label == "info"
    with pytest.raises(ValueError):
        Finding(True, "x", "d", level="fail")
    with pytest.raises(ValueError):
        Finding(False, "x", "d", level="ok")


def test_a_problem_is_one_line_with_its_fix() -> None:
    f = Finding(False, "image tiny", "not in the image store /s", "lab image build tiny")
    assert f.line() == "FAIL image tiny: not in the image store /s; fix: lab image build tiny"
    assert Finding(True, "QEMU", "present").line() == "ok QEMU: present"


def test_only_failures_fail_the_doctor() -> None:
    warn = Finding(False, "KVM", "software emulation", level="warn")
    assert not any_failed([Finding(True, "a", "b"), warn])
    assert any_failed([warn, Finding(False, "image tiny", "missing", "lab image build tiny")])


def test_kvm_that_hangs_is_a_warning_not_an_error() -> None:
    f = kvm_finding(HUNG)
    assert f.level == "warn"
    assert f.detail == ("software emulation: guests run 5-10x slower; /dev/kvm exists but a test guest hung under "
                        "KVM (no kernel output after 15 s)")
    assert f.fix is None  # no command fixes a host that hangs KVM guests
    aborted = kvm_finding(ABORTED)  # the other way machines of this kind fail: QEMU aborts at once
    assert aborted.level == "warn" and aborted.fix is None
    assert aborted.detail == f"software emulation: guests run 5-10x slower; {ABORTED.why}"
    assert kvm_finding(AccelReport("tcg", "untested", "KVM not tested")).fix == "lab image build tiny"
    works = kvm_finding(AccelReport("kvm", "works", "KVM works: a test guest reached userspace in 0.8 s"))
    assert works.ok and works.detail == "KVM works: a test guest reached userspace in 0.8 s"


def test_json_and_table_and_fix_lines() -> None:
    findings = [Finding(True, "libvirt", "ok"), Finding(False, "KVM", "slow [tcg]", level="warn"),
                Finding(False, "image windows-server-2022", "missing", "lab image build windows-server-2022 --iso PATH")]
    data = json.loads(as_json(findings, "chapter-2"))
    assert data["lab"] == "chapter-2" and data["ok"] is False
    assert [f["status"] for f in data["findings"]] == ["ok", "warn", "FAIL"]
    assert fix_lines(findings) == ["lab image build windows-server-2022 --iso PATH    # image windows-server-2022"]
    assert render_table(findings).row_count == 3


def test_the_cli_exits_1_on_a_failure_and_0_on_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    state: dict[str, list[Finding]] = {}
    monkeypatch.setattr(doctor_command, "diagnose", lambda loaded, store, recheck=False: state["findings"])
    state["findings"] = [Finding(False, "KVM", "software emulation", level="warn")]
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "warn" in result.output and "software emulation" in result.output
    state["findings"].append(Finding(False, "image tiny", "missing", "lab image build tiny"))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False  # stdout is JSON only; progress goes to stderr
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1 and "lab image build tiny    # image tiny" in result.output
    bad = CliRunner().invoke(app, ["doctor", "no-such-lab"])
    assert bad.exit_code == 2 and "no lab 'no-such-lab'" in bad.output


# --------------------------------------------------------------------- host checks


def test_device_access_follows_owner_group_other() -> None:
    qemu, kvm, other = 64055, 109, 5
    assert not can_read_write(0o600, 0, 0, qemu, {qemu})  # root:root 0600, what a host without udev has
    assert can_read_write(0o660, 0, kvm, qemu, {kvm, qemu})  # root:kvm 0660, udev's rule
    assert not can_read_write(0o660, 0, kvm, qemu, {qemu})  # user not in group kvm
    assert not can_read_write(0o640, 0, kvm, qemu, {kvm})  # group may read, not write
    assert can_read_write(0o666, 0, 0, qemu, {other})
    assert can_read_write(0o600, qemu, 0, qemu, set())
    assert can_read_write(0o000, 0, 0, 0, set())  # root


def test_qemu_user_comes_from_qemu_conf(tmp_path: Path) -> None:
    conf = tmp_path / "qemu.conf"
    conf.write_text('#user = "libvirt-qemu"\n#group = "libvirt-qemu"\n')
    assert qemu_run_as(conf) == ("libvirt-qemu", None)
    conf.write_text('user = "qemu"\n  group = "kvm"\n')
    assert qemu_run_as(conf) == ("qemu", "kvm")
    assert qemu_run_as(tmp_path / "missing.conf") == ("libvirt-qemu", None)


def test_nested_is_read_from_the_vendor_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_nesting, "cpu_vendor", lambda: "intel")
    n = needs(nested=("SVR1", "SVR2"))
    params = tmp_path / "kvm_intel" / "parameters"
    missing = check_nested(n, "kvm", tmp_path)
    assert missing.level == "fail" and "kvm_intel is not loaded" in missing.detail
    params.mkdir(parents=True)
    (params / "nested").write_text("N\n")
    off = check_nested(n, "kvm", tmp_path)
    assert off.level == "fail"
    assert off.fix is not None and off.fix.startswith(
        'echo "options kvm_intel nested=1" > /etc/modprobe.d/kvm.conf && modprobe -r kvm_intel && modprobe kvm_intel')
    (params / "nested").write_text("Y\n")
    assert check_nested(n, "kvm", tmp_path).ok
    assert check_nested(n, "tcg", tmp_path).level == "info"
    monkeypatch.setattr(doctor_nesting, "cpu_vendor", lambda: "amd")
    assert "kvm_amd" in str(check_nested(n, "kvm", tmp_path).fix)


def test_ovmf_files_and_descriptors(tmp_path: Path) -> None:
    ovmf, desc = tmp_path / "OVMF", tmp_path / "firmware"
    ovmf.mkdir()
    desc.mkdir()
    n = needs(uefi=("DC1",))
    none = check_ovmf(n, ovmf, desc)
    assert none.level == "fail" and none.fix == "apt-get install ovmf"
    for name in ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"):
        (ovmf / name).write_bytes(b"")
    (desc / "60-edk2-x86_64.json").write_text("{}")
    assert check_ovmf(n, ovmf, desc).ok
    secure = check_ovmf(needs(uefi=("DC1",), secure_boot=("DC1",)), ovmf, desc)
    assert not secure.ok and "OVMF_CODE_4M.ms.fd" in secure.detail


def test_bridge_netfilter_is_informational(tmp_path: Path) -> None:
    f = tmp_path / "bridge-nf-call-iptables"
    f.write_text("1\n")
    on = check_bridge_netfilter(f)
    assert on.ok and on.level == "info" and "hyperlab's guards" in on.detail
    assert check_bridge_netfilter(tmp_path / "absent").level == "info"


def test_existing_dir_walks_up_to_what_exists(tmp_path: Path) -> None:
    assert doctor.existing_dir(tmp_path / "a" / "b") == tmp_path
    assert doctor.free_bytes(tmp_path / "a" / "b") == os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    assert stat.S_ISDIR(doctor.mount_point(tmp_path / "nope").stat().st_mode)


def test_evmcs_is_said_per_cpu_with_the_fix_in_the_topology(tmp_path: Path) -> None:
    """Hyper-V on KVM fails with the enlightened VMCS on CPUs without APICv and some low-end parts."""
    from hyperlab.ops.doctor_nesting import check_evmcs

    params = tmp_path / "kvm_intel" / "parameters"
    params.mkdir(parents=True)
    cpuinfo = tmp_path / "cpuinfo"
    n = needs(nested=("SVR1", "SVR2"), nested_windows=("SVR1", "SVR2"), evmcs={"SVR1": None, "SVR2": None})
    (params / "enable_apicv").write_text("Y\n")
    cpuinfo.write_text("processor : 0\nmodel name : Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n")
    assert check_evmcs(n, "intel", tmp_path, cpuinfo).ok
    (params / "enable_apicv").write_text("N\n")
    risky = check_evmcs(n, "intel", tmp_path, cpuinfo)
    assert (risky.ok, risky.level) == (False, "warn") and "without APICv" in risky.detail
    assert risky.fix == "set `evmcs: false` on SVR1, SVR2 in the topology"
    (params / "enable_apicv").write_text("Y\n")
    cpuinfo.write_text("model name : Intel(R) Celeron(R) N5105 @ 2.00GHz\n")
    assert "a Celeron" in check_evmcs(n, "intel", tmp_path, cpuinfo).detail
    off = needs(nested=("SVR1",), nested_windows=("SVR1",), evmcs={"SVR1": False})
    assert check_evmcs(off, "intel", tmp_path, cpuinfo).level == "info"
    assert check_evmcs(n, "amd", tmp_path, cpuinfo).level == "info"  # the default is off on AMD
    forced = check_evmcs(needs(nested=("SVR1",), nested_windows=("SVR1",), evmcs={"SVR1": True}), "amd", tmp_path, cpuinfo)
    assert forced.level == "info" and "left out" in forced.detail  # the plan drops it: QEMU would refuse the domain


def test_nested_windows_nodes_get_e1000e_and_evmcs_by_default_and_the_topology_decides() -> None:
    from hyperlab.core.plan import HostFacts, plan

    loaded = load_lab("chapter-2", ROOT)
    intel = plan(loaded, "t", HostFacts(cpu_vendor="intel"))
    amd = plan(loaded, "t", HostFacts(cpu_vendor="amd"))
    assert (intel.node("SVR1").nic_model, intel.node("SVR1").evmcs, amd.node("SVR1").evmcs) == ("e1000e", True, False)
    topo = loaded.topology.topology
    nodes = {name: n.model_copy(update={"evmcs": True}) if name in ("SVR1", "DC1") else n for name, n in topo.nodes.items()}
    forced = topo.model_copy(update={"nodes": nodes})
    loaded_forced = type(loaded)(loaded.lab, loaded.source, type(loaded.topology)(forced, loaded.topology.source))
    assert plan(loaded_forced, "t", HostFacts(cpu_vendor="amd")).node("SVR1").evmcs is False  # Intel only
    assert plan(loaded_forced, "t", HostFacts(cpu_vendor="intel")).node("DC1").evmcs is False  # nested Windows only
    assert (intel.node("DC1").nic_model, intel.node("DC1").evmcs) == ("virtio", False)
    linux = plan(load_lab("chapter-2-linux", ROOT), "t", HostFacts(cpu_vendor="intel"))
    assert (linux.node("SVR1").nic_model, linux.node("SVR1").evmcs) == ("virtio", False)
