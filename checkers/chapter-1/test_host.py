"""Steps kvm-support and libvirt-running: what HV1 offers for virtualization, and libvirt answering on it.

kvm-support compares what the student wrote in /root/virt-check.txt with what HV1 really shows
(/proc/cpuinfo, lsmod) and with how HV1 itself runs (under KVM, or under QEMU's emulation, where
the vmx/svm flag is emulated and KVM inside cannot run guests).
"""

from __future__ import annotations

import re

import pytest

REPORT = "/root/virt-check.txt"
FORMAT = "lines `cpu-flags: ...`, `kvm-modules: ...`, `accel: kvm|qemu` and `why: ...`"


def report(hv) -> dict[str, str]:
    result = hv.sh(f"cat {REPORT}")
    assert result.ok, f"HV1 has no {REPORT}; expected a report with {FORMAT}"
    fields = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^\s*([A-Za-z_-]+)\s*[:=]\s*(.*?)\s*$", line)
        if match:
            fields[match.group(1).lower().replace("_", "-")] = match.group(2)
    return fields


def words(value: str) -> set[str]:
    found = {w for w in re.split(r"[\s,]+", value.strip().lower()) if w}
    return set() if found <= {"none", "-"} else found


def field(fields: dict[str, str], name: str) -> str:
    assert name in fields, f"{REPORT} has no `{name}:` line (it has {sorted(fields) or 'none'}); expected {FORMAT}"
    return fields[name]


@pytest.mark.step("kvm-support")
def test_report_names_the_cpus_virtualization_flag(hv):
    """/root/virt-check.txt names the vmx/svm flag HV1's CPU shows"""
    written = words(field(report(hv), "cpu-flags"))
    real = set(hv.out("grep -owE 'vmx|svm' /proc/cpuinfo | sort -u || true").split())
    assert written == real, (f"{REPORT} says cpu-flags: {' '.join(sorted(written)) or 'none'}, but /proc/cpuinfo on HV1 "
                             f"shows {' '.join(sorted(real)) or 'none'} (grep -owE 'vmx|svm' /proc/cpuinfo)")


@pytest.mark.step("kvm-support")
def test_report_names_the_loaded_kvm_modules(hv):
    """/root/virt-check.txt names the KVM modules lsmod shows"""
    written = words(field(report(hv), "kvm-modules"))
    real = set(hv.out("lsmod | awk '$1 ~ /^kvm/ {print $1}'").split())
    assert written == real, (f"{REPORT} says kvm-modules: {' '.join(sorted(written)) or 'none'}, but lsmod on HV1 shows "
                             f"{' '.join(sorted(real)) or 'none'} (lsmod | grep kvm)")


@pytest.mark.step("kvm-support")
def test_report_picks_the_accelerator_that_works_and_says_why(hv):
    """/root/virt-check.txt picks the accelerator that works in HV1 and says why"""
    fields = report(hv)
    written = field(fields, "accel").strip().lower()
    written = {"tcg": "qemu"}.get(written, written)
    expected = hv.expected_accel()
    how = ("HV1 runs under KVM with nested virtualization" if expected == "kvm" else
           "HV1 itself runs under QEMU's software emulation: its vmx/svm flag is emulated and KVM inside it hangs")
    assert written == expected, f"{REPORT} says accel: {written or '(empty)'}, expected {expected}: {how}"
    why = field(fields, "why")
    assert len(why.split()) >= 3, f"{REPORT} says why: {why or '(empty)'}; expected a sentence saying why guests use {expected}"


@pytest.mark.step("libvirt-running")
def test_libvirtd_is_running_and_enabled(hv):
    """libvirtd is active now and enabled at boot"""
    active = hv.sh("systemctl is-active libvirtd").stdout.strip()
    enabled = hv.sh("systemctl is-enabled libvirtd").stdout.strip()
    assert (active, enabled) == ("active", "enabled"), (
        f"libvirtd on HV1 is {active or 'unknown'} and {enabled or 'unknown'}; expected active and enabled "
        "(systemctl enable --now libvirtd)")


@pytest.mark.step("libvirt-running")
def test_virsh_answers(hv):
    """virsh -c qemu:///system list --all answers"""
    # Asked only of a running libvirtd: the check must not start it through its socket.
    assert hv.libvirtd_active(), "libvirtd is not running on HV1, so virsh cannot answer"
    result = hv.sh("virsh -c qemu:///system list --all")
    assert result.ok, f"virsh -c qemu:///system list --all failed on HV1:\n{result.summary()}"
