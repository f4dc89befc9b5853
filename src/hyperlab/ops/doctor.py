"""`lab doctor`: is this host ready for a lab? Each problem is one line and the command that fixes it.

`diagnose()` returns findings and never prints; the CLI (`hyperlab.cli.doctor`) shows them. Checks:
libvirt reachable; QEMU present; KVM present *and working* (`hyperlab.host.accel` boots a test guest);
/dev/kvm usable by QEMU's user (else libvirtd re-probes QEMU on every API call, ~60 s each);
nested virtualization when the lab has nested nodes under KVM; OVMF for UEFI nodes, swtpm for
TPM nodes; free disk and memory against the lab's needs; the golden images the lab needs;
bridge netfilter (informational: hyperlab's guards handle it).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperlab import __version__
from hyperlab.core.catalog import IMAGES
from hyperlab.core.load import LoadedLab
from hyperlab.core.plan import HostFacts
from hyperlab.core.units import human_size
from hyperlab.host.accel import CACHE_PATH, KVM_DEVICE, AccelReport, AccelUnavailable, qemu_version, resolve_accel
from hyperlab.host.accel_probe import QEMU
from hyperlab.core.model import DEFAULT_URI
from hyperlab.host.conn import HostProblem, connect
from hyperlab.host.facts import cpu_vendor
from hyperlab.host.hostnet import BRNF_SYSCTL
from hyperlab.images.store import ImageError, ImageStore
from hyperlab.images.test_guest import detect
from hyperlab.core.needs import OVERHEAD_KVM, OVERHEAD_TCG, Needs, disk_needed, lab_needs, memory_needed
from hyperlab.ops.doctor_model import Finding, any_failed
from hyperlab.ops.doctor_nesting import check_evmcs, check_nested

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
QEMU_USER_DEFAULT = "libvirt-qemu"  # Debian's build default (qemu.conf: #user = "libvirt-qemu")
OVMF_DIR = Path("/usr/share/OVMF")
OVMF_FILES = ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd")
OVMF_SECURE_FILES = ("OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd")
FIRMWARE_DESCRIPTORS = Path("/usr/share/qemu/firmware")  # what libvirt's firmware="efi" autoselection reads
KVM_FIX = "chown root:kvm /dev/kvm && chmod 0660 /dev/kvm"


# ------------------------------------------------------------------------------ host facts


def existing_dir(path: Path) -> Path:
    """`path` or its nearest existing ancestor (a store not yet created lives on its parent's disk)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    st = os.statvfs(existing_dir(path))
    return st.f_bavail * st.f_frsize


def mount_point(path: Path) -> Path:
    path = existing_dir(path).resolve()
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int:
    return _meminfo("MemAvailable", meminfo)


def mem_total(meminfo: Path = Path("/proc/meminfo")) -> int:
    return _meminfo("MemTotal", meminfo)


def _meminfo(field: str, meminfo: Path) -> int:
    match = re.search(rf"^{field}:\s+(\d+)\s*kB", meminfo.read_text(), re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def host_offer(store: ImageStore, facts: HostFacts | None = None) -> dict[str, int | str]:
    """What this host offers a class (`lab doctor --json`'s `host`): its memory, CPU threads, and the
    disk hyperlab may use: what its image store and instances hold now plus what is free beside them
    (the smaller, when they live on two filesystems). Counting what hyperlab holds keeps a plan made
    after `lab class up` from charging the images and the students' overlays twice."""
    facts = facts or HostFacts()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    store_fs, instances_fs = mount_point(store.root), mount_point(facts.instances_dir)
    held_store, held_instances = bytes_below(store.root), bytes_below(facts.instances_dir)
    if store_fs == instances_fs:
        disk = free_bytes(store.root) + held_store + held_instances
    else:
        disk = min(free_bytes(store.root) + held_store, free_bytes(facts.instances_dir) + held_instances)
    return {"hyperlab": __version__, "memory": mem_total(), "cpus": cpus, "disk": disk}


def bytes_below(folder: Path) -> int:
    """Disk blocks the files below `folder` take (0 when it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total


def qemu_run_as(conf: Path = QEMU_CONF) -> tuple[str, str | None]:
    """(user, group) libvirt runs QEMU as, from qemu.conf (group None: the build default)."""
    try:
        text = conf.read_text()
    except OSError:
        text = ""
    found: dict[str, str] = {}
    for key in ("user", "group"):
        match = re.search(rf'^\s*{key}\s*=\s*"([^"]*)"', text, re.MULTILINE)
        if match:
            found[key] = match.group(1)
    return found.get("user", QEMU_USER_DEFAULT), found.get("group")


def _uid_gid(user: str, group: str | None) -> tuple[int, int, set[int]] | None:
    """uid, gid and all groups of the QEMU process, as libvirt computes them (virGetGroupList):
    the user's groups from its passwd entry's primary group, plus the configured group."""
    try:
        entry = pwd.getpwuid(int(user[1:])) if user.startswith("+") else pwd.getpwnam(user)
    except (KeyError, ValueError):
        return None
    if group is None:
        gid = _gid(user) if not user.startswith("+") else entry.pw_gid
        gid = entry.pw_gid if gid is None else gid
    else:
        gid = int(group[1:]) if group.startswith("+") else _gid(group)
        if gid is None:
            return None
    groups = set(os.getgrouplist(entry.pw_name, entry.pw_gid)) | {gid}
    return entry.pw_uid, gid, groups


def _gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def can_read_write(mode: int, owner: int, group: int, uid: int, gids: set[int]) -> bool:
    """Would a process of `uid` with groups `gids` open a file of this mode and owner read-write?"""
    if uid == 0:
        return True
    if uid == owner:
        return mode & 0o600 == 0o600
    if group in gids:
        return mode & 0o060 == 0o060
    return mode & 0o006 == 0o006


def _owner_text(st: os.stat_result) -> str:
    def name(lookup: Callable[[int], Any], ident: int) -> str:
        try:
            return str(lookup(ident)[0])
        except KeyError:
            return str(ident)

    return f"{name(pwd.getpwuid, st.st_uid)}:{name(grp.getgrgid, st.st_gid)} {stat.S_IMODE(st.st_mode):04o}"


# ------------------------------------------------------------------------------------ checks


def check_libvirt(uri: str) -> Finding:
    try:
        conn = connect(uri)
    except HostProblem as exc:
        return Finding(False, "libvirt", str(exc).split(";")[0], "bash scripts/setup-host.sh")
    try:
        lib, hv = conn.getLibVersion(), conn.getVersion()
    finally:
        conn.close()
    return Finding(True, "libvirt", f"libvirt {_version(lib)} answers on {uri} (QEMU {_version(hv)})")


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def check_qemu() -> Finding:
    exe = shutil.which(QEMU)
    if exe is None:
        return Finding(False, "QEMU", f"{QEMU} is not installed", "apt-get install qemu-system-x86")
    version = qemu_version(exe) or "version unknown"
    return Finding(True, "QEMU", f"{exe}: {version}")


def kvm_finding(report: AccelReport, used: AccelReport | None = None) -> Finding:
    if report.kvm_works:
        cached = " (cached verdict)" if report.cached else ""
        return Finding(True, "KVM", f"{report.why}{cached}")
    vendor_module = "kvm_amd" if cpu_vendor() == "amd" else "kvm_intel"
    fixes: dict[str, str | None] = {
        "missing": f"modprobe {vendor_module} (if it fails: enable VT-x/AMD-V in the firmware setup)",
        "no-access": "run lab as root",
        "no-qemu": "apt-get install qemu-system-x86",
        "untested": "lab image build tiny",
        "hung": None,  # a host kernel problem; no command fixes it, software emulation works
        "failed": None,
    }
    detail = f"software emulation: guests run 5-10x slower; {report.why}"
    if report.cached:
        detail += " (cached verdict; lab doctor --recheck tests again)"
    if used is not None and used.source != "detected":
        detail += f"; {used.source} chooses {used.accel}"
    return Finding(False, "KVM", detail, fixes.get(report.status), level="warn")


def check_kvm_access(device: Path = KVM_DEVICE, conf: Path = QEMU_CONF) -> Finding | None:
    """Can QEMU's user open /dev/kvm? Without udev the node is root:root 0600; libvirtd (root) then
    sees KVM as usable for itself but not for QEMU's user, drops its QEMU capability cache on
    every API call and probes QEMU again: each defineXML took ~60 s (25 ms after this fix)."""
    try:
        st = device.stat()
    except OSError:
        return None
    user, group = qemu_run_as(conf)
    ids = _uid_gid(user, group)
    what = f"{device} access"
    if ids is None:
        return Finding(False, what, f"QEMU's user {user!r} (from {conf}) does not exist", "bash scripts/setup-host.sh",
                       level="warn")
    uid, gids = ids[0], ids[2]
    owner = _owner_text(st)
    if can_read_write(st.st_mode, st.st_uid, st.st_gid, uid, gids):
        return Finding(True, what, f"{owner}: QEMU's user {user} can use it")
    kvm_gid = _gid("kvm")
    fix = KVM_FIX if kvm_gid is not None and kvm_gid in gids else f"{KVM_FIX} && usermod -aG kvm {user}"
    return Finding(False, what, f"{owner}: QEMU's user {user} cannot open it, so libvirtd re-probes QEMU on every "
                   "call (~60 s per define)", fix)


def check_ovmf(needs: Needs, ovmf_dir: Path = OVMF_DIR, descriptors: Path = FIRMWARE_DESCRIPTORS) -> Finding:
    wanted = list(OVMF_FILES) + (list(OVMF_SECURE_FILES) if needs.secure_boot else [])
    missing = [name for name in wanted if not (ovmf_dir / name).is_file()]
    if not any(descriptors.glob("*.json")):
        missing.append(f"{descriptors}/*.json")
    names = ", ".join(needs.uefi)
    if missing:
        return Finding(False, "UEFI firmware (OVMF)", f"{names} boot with UEFI but {', '.join(missing)} missing",
                       "apt-get install ovmf")
    return Finding(True, "UEFI firmware (OVMF)", f"{ovmf_dir}/{OVMF_FILES[0]} for {names}")


def check_swtpm(needs: Needs) -> Finding:
    names = ", ".join(needs.tpm)
    missing = [tool for tool in ("swtpm", "swtpm_setup") if shutil.which(tool) is None]
    if missing:
        return Finding(False, "TPM (swtpm)", f"{names} have a TPM but {', '.join(missing)} missing",
                       "apt-get install swtpm swtpm-tools")
    return Finding(True, "TPM (swtpm)", f"swtpm present for {names}")


def check_disk(needs: Needs, missing_images: list[str], store_root: Path, instances_dir: Path) -> list[Finding]:
    need_instances, need_images = disk_needed(needs, missing_images)
    by_fs: dict[Path, list[tuple[str, int]]] = {}
    by_fs.setdefault(mount_point(instances_dir), []).append(
        (f"{len(needs.nodes)} node overlays with their checkpoints in {instances_dir}", need_instances))
    if need_images:
        by_fs.setdefault(mount_point(store_root), []).append((f"building {', '.join(missing_images)} in {store_root}",
                                                              need_images))
    findings = []
    for fs, parts in by_fs.items():
        need = sum(size for _, size in parts)
        free = free_bytes(fs)
        uses = " + ".join(f"{text} ~{human_size(size)}" for text, size in parts)
        detail = f"{human_size(free)} free on {fs}; need ~{human_size(need)} ({uses})"
        if free >= need:
            findings.append(Finding(True, "disk", detail))
        else:
            findings.append(Finding(False, "disk", detail,
                                    f"free {human_size(need - free)} on {fs}, or set HYPERLAB_IMAGES to a "
                                    "folder on a larger disk"))
    return findings


def check_memory(needs: Needs, accel: str, available: int | None = None) -> Finding:
    available = mem_available() if available is None else available
    need = memory_needed(needs, accel)
    per = OVERHEAD_TCG if accel == "tcg" else OVERHEAD_KVM
    count = f"{len(needs.nodes)} node" + ("s" if len(needs.nodes) != 1 else "")
    detail = (f"{human_size(available)} available; need ~{human_size(need)} ({count} "
              f"{human_size(needs.memory)} + QEMU {human_size(per)} each under {accel})")
    if available >= need:
        return Finding(True, "memory", detail)
    return Finding(False, "memory", detail, f"free {human_size(need - available)} of memory (stop other guests: "
                   "virsh list), or use a smaller lab")


def check_image(name: str, store: ImageStore) -> Finding:
    what = f"image {name}"
    hint = IMAGES[name].build_hint if name in IMAGES else f"lab image build {name}"
    try:
        manifest = store.get(name)
    except ImageError as exc:
        if store.exists(name):  # a damaged manifest: the store's own one-line message has the fix
            return Finding(False, what, str(exc).split(";")[0], f"{hint} --force")
        return Finding(False, what, f"not in the image store {store.root}", hint)
    built = manifest.build_date.strftime("%Y-%m-%d")
    return Finding(True, what, f"{store.path(name)} ({human_size(manifest.size)}, built {built})")


def check_bridge_netfilter(path: Path = BRNF_SYSCTL) -> Finding:
    try:
        value = path.read_text().strip()
    except OSError:
        return Finding(True, "bridge netfilter", "br_netfilter not loaded: bridged lab traffic skips iptables",
                       level="info")
    if value == "1":
        return Finding(True, "bridge netfilter", "net.bridge.bridge-nf-call-iptables=1: bridged lab traffic passes "
                       "the host's iptables; hyperlab's guards exclude lab bridges from NAT (nothing to do)", level="info")
    return Finding(True, "bridge netfilter", f"net.bridge.bridge-nf-call-iptables={value}", level="info")


# ---------------------------------------------------------------------------------- diagnose


def diagnose(
    loaded: LoadedLab | None,
    store: ImageStore | None = None,
    *,
    facts: HostFacts | None = None,
    uri: str = DEFAULT_URI,
    accel: AccelReport | None = None,
    recheck: bool = False,
    cache_path: Path | None = CACHE_PATH,
    env: dict[str, str] | None = None,
) -> list[Finding]:
    """Every check for this host, and for `loaded`'s needs when a lab is given. Never prints.

    `accel`: a detection already made (else detection runs: cached, or up to 15 s once).
    """
    store = store or ImageStore()
    facts = facts or HostFacts()
    findings = [check_libvirt(uri), check_qemu()]

    report = accel or detect(store, cache_path=cache_path, use_cache=not recheck)
    try:
        used = resolve_accel("auto", env=env, detect=lambda: report)
    except AccelUnavailable as exc:
        used = None
        findings.append(Finding(False, "accelerator", str(exc), "unset HYPERLAB_ACCEL"))
    findings.append(kvm_finding(report, used))
    access = check_kvm_access()
    if access is not None:
        findings.append(access)
    accel_used = used.accel if used is not None else report.accel

    if loaded is not None:
        needs = lab_needs(loaded)
        if needs.nested:
            findings.append(check_nested(needs, accel_used))
        if needs.nested_windows and accel_used == "kvm":
            findings.append(check_evmcs(needs, cpu_vendor()))
        if needs.uefi:
            findings.append(check_ovmf(needs))
        if needs.tpm:
            findings.append(check_swtpm(needs))
        missing = [name for name in needs.images if not store.exists(name)]
        findings += check_disk(needs, missing, store.root, facts.instances_dir)
        findings.append(check_memory(needs, accel_used))
        findings += [check_image(name, store) for name in needs.images]
    findings.append(check_bridge_netfilter())
    return findings


__all__ = ["Finding", "any_failed", "diagnose"]
