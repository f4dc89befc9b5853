"""Steps guest-boot, reset and qemu-process: vm1 boots from its overlay, comes back clean from a new one,
and is a QEMU process on HV1 (seed 003: a virtual machine is a Linux process).

The tiny guest prints `hyperlab-tiny: ready boot=N` on its serial console once its init has run;
N counts the boots its disk has seen (in /data/boot-count on the overlay), so a new overlay says 1.
"""

from __future__ import annotations

import re

import pytest

from hyperlab.grading import eventually
from hyperlab.grading.target import CheckError

PID_FILE = "/root/vm1.pid"


def running_vm1(hv):
    """vm1's live definition; the check fails unless vm1 is defined and running."""
    xml = hv.domain_xml("vm1")
    assert xml is not None, ("HV1's libvirt (qemu:///system) has no domain vm1" +
                             ("" if hv.libvirtd_active() else " (libvirtd is not running)"))
    state = hv.domain_state("vm1")
    assert state == "running", f"vm1 is {state}; expected running (virsh -c qemu:///system start vm1)"
    return xml


def ready_line(hv, xml) -> str:
    """The guest's latest ready line on its serial console, waiting while it boots."""
    logs = hv.console_logs(xml)
    assert logs, ("vm1's serial console is not written to a file, so its boot cannot be seen; add "
                  "<log file='/var/log/libvirt/qemu/vm1-console.log'/> to its <serial> device")
    accel = hv.expected_accel()
    assert xml.get("type") == "qemu" or accel == "kvm", (
        f"vm1 is a domain of type {xml.get('type')}, but KVM cannot run guests inside HV1 (HV1 itself is emulated, "
        "see step kvm-support); define vm1 with <domain type='qemu'>")

    def ready() -> str:
        lines = hv.console_text(xml).splitlines()
        found = [line.strip() for line in lines if hv.READY in line]
        assert found, (f"vm1's console ({', '.join(logs)}) has no '{hv.READY}' line; its last line is "
                       f"{(lines[-1].strip() if lines else '(nothing)')[:160]!r}")
        return found[-1]

    return eventually(ready, timeout=hv.BOOT_TIMEOUT, every=10, what="vm1's ready line on its serial console")


def boot_count(line: str) -> int:
    match = re.search(r"ready boot=(\d+)", line)
    if match is None:
        raise CheckError(f"cannot read the boot count in {line!r}")
    return int(match.group(1))


# -------------------------------------------------------------------------------- guest-boot


@pytest.mark.step("guest-boot")
def test_vm1_runs_from_its_overlay(hv):
    """vm1 is defined in HV1's libvirt and running with active/vm1.qcow2 as its disk"""
    xml = running_vm1(hv)
    disks = [s.get("file") or s.get("dev") or "?" for s in xml.findall("devices/disk[@device='disk']/source")]
    assert hv.overlay("vm1") in disks, f"vm1's disks are {disks or 'none'}; expected {hv.overlay('vm1')}"


@pytest.mark.step("guest-boot")
def test_vm1_booted(hv):
    """vm1's kernel and init came up: its serial console says ready"""
    xml = running_vm1(hv)
    ready_line(hv, xml)


# ------------------------------------------------------------------------------------- reset


def overlay_birth(hv) -> float:
    path = hv.overlay("vm1")
    info = hv.stat(path)
    assert info is not None, f"{path} does not exist on HV1"
    if info["birth"] == 0:
        raise CheckError(f"HV1's filesystem does not record when {path} was created")
    return float(info["birth"])


def recreated_at(hv) -> float:
    """When vm1's overlay was created; the check fails unless that was after vm1 had first run."""
    starts = hv.starts("vm1")
    assert starts, "libvirt's log of vm1 (/var/log/libvirt/qemu/vm1.log on HV1) records no start of vm1"
    born = overlay_birth(hv)
    assert born > starts[0], (
        f"{hv.overlay('vm1')} was created at {hv.when(born)}, before vm1 first started at {hv.when(starts[0])}: it is "
        "still the overlay vm1 first booted from; expected a new one, created after vm1 ran (stop vm1, delete it, "
        "create it again)")
    return born


@pytest.mark.step("reset")
def test_vm1_overlay_was_recreated_on_the_untouched_golden_image(hv):
    """active/vm1.qcow2 was made anew after vm1 had run, on the golden image, which is unchanged"""
    recreated_at(hv)
    path = hv.overlay("vm1")
    layers = hv.chain(path)
    assert isinstance(layers, list), f"{path} is not a disk image on HV1: {layers}"
    assert hv.backing_of(layers) == hv.GOLDEN, (f"the new {path} is backed by {hv.backing_of(layers) or 'nothing'}; "
                                                f"expected {hv.GOLDEN}")
    info = hv.stat(hv.GOLDEN)
    assert info is not None, f"{hv.GOLDEN} is gone; a reset recreates the overlay, never the golden image"
    assert info["mode"] & 0o222 == 0, f"{hv.GOLDEN} has mode {info['mode']:o}; expected it to stay read-only (444)"
    same = hv.sh(f"qemu-img compare -U {hv.GOLDEN} {hv.DELIVERED}")
    assert same.ok, f"{hv.GOLDEN} changed (qemu-img compare: {(same.stdout or same.stderr).strip()[:200]})"


@pytest.mark.step("reset")
def test_vm1_booted_clean_from_the_new_overlay(hv):
    """vm1 was started again on the new overlay and booted from a clean disk (boot=1)"""
    xml = running_vm1(hv)
    born = recreated_at(hv)
    last = hv.starts("vm1")[-1]
    assert last >= born, (f"vm1 last started at {hv.when(last)}, before its overlay was recreated at {hv.when(born)}: "
                          "it still runs on the deleted one; start vm1 again")
    count = boot_count(ready_line(hv, xml))
    assert count == 1, (f"vm1 says boot={count}: its disk has seen {count} boots, so it is not a new overlay; "
                        "expected boot=1 from a freshly created one")


# ------------------------------------------------------------------------------ qemu-process


def pid_written(hv) -> str:
    result = hv.sh(f"cat {PID_FILE}")
    assert result.ok, f"HV1 has no {PID_FILE}; expected the PID of vm1's QEMU process in it"
    text = result.stdout.strip()
    assert text.isdigit(), f"{PID_FILE} says {text[:40]!r}; expected a process ID (a number)"
    return text


@pytest.mark.step("qemu-process")
def test_pid_file_names_a_running_process(hv):
    """/root/vm1.pid holds the PID of a running process"""
    pid = pid_written(hv)
    assert hv.exists(f"/proc/{pid}"), f"{PID_FILE} says {pid}, but no process {pid} runs on HV1"


@pytest.mark.step("qemu-process")
def test_pid_is_vm1s_qemu(hv):
    """that process is the QEMU process that runs vm1"""
    pid = pid_written(hv)
    command = hv.sh(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout.strip()
    real = hv.sh("cat /run/libvirt/qemu/vm1.pid").stdout.strip()
    assert real, "vm1 has no QEMU process: libvirt reports it not running"
    seen = command[:80] if command else "no such process: a restarted guest is a new process with a new PID"
    assert pid == real, f"{PID_FILE} says {pid} ({seen}), but vm1's QEMU process is {real}"
    assert "qemu-system" in command and "guest=vm1," in command, f"process {pid} runs {command[:120]!r}; expected vm1's QEMU"
