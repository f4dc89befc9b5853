"""`lab doctor` against this host for real: libvirtd on qemu:///system, the real KVM test, the real
/dev/kvm, OVMF, disk and memory. Expected values are computed independently of doctor.py (from
libvirt, /proc, the filesystem and the kernel's own permission check), so each assertion can fail.

The image store is a fresh one under /var/tmp holding the real tiny image (the KVM test boots it)
and debian-12 as a placeholder (a qcow2 and a manifest, never booted): chapter-2-linux's images
are then present, chapter-2's Windows image is not, whatever else is on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlab.host.accel import AccelReport
from hyperlab.core.catalog import IMAGES
from hyperlab.ops.doctor import (
    KVM_FIX,
    Finding,
    any_failed,
    check_kvm_access,
    diagnose,
    free_bytes,
    mem_available,
    mount_point,
)
from hyperlab.images.store import ImageStore
from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts

pytestmark = pytest.mark.libvirtd

ROOT = Path(__file__).resolve().parents[2]
GiB, MiB = 1 << 30, 1 << 20
OVMF = [Path("/usr/share/OVMF") / n for n in ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd")]


@pytest.fixture(scope="module")
def store() -> Iterator[ImageStore]:
    root = Path(tempfile.mkdtemp(prefix="hlacc-doctor-", dir="/var/tmp"))
    try:
        s = ImageStore(root)
        s.ensure_root()
        _real_tiny(s)  # the KVM test boots it: it must be the real image
        name = "debian-12"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(s.path(name)), "64M"], check=True)
        for side in ("vmlinuz", "initrd"):
            (root / f"{name}.{side}").write_bytes(b"placeholder")
        s.finish(name, os_name="linux", builder="test placeholder", kernel=f"{name}.vmlinuz", initrd=f"{name}.initrd")
        from hyperlab.images.ticker import build_ticker

        build_ticker(s)  # chapter-2-linux's nested guests; builds in a second
        yield s
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _real_tiny(target: ImageStore) -> None:
    """Copy tiny from $HYPERLAB_IMAGES (or the default store) when built there, else build it (~10 s)."""
    source = ImageStore()
    if source.exists("tiny"):
        for suffix in ("qcow2", "json", "vmlinuz", "initrd"):
            shutil.copyfile(source.root / f"tiny.{suffix}", target.root / f"tiny.{suffix}")
        return
    if os.geteuid() != 0 or shutil.which("mmdebstrap") is None:
        pytest.skip("no tiny image and cannot build one (needs root and mmdebstrap: bash scripts/setup-host.sh)")
    from hyperlab.images.tiny import build_tiny

    build_tiny(target)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private verdict cache: the first diagnose runs the real KVM test (15 s here), later ones reuse it."""
    return tmp_path_factory.mktemp("hlacc-cache") / "accel.json"


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> HostFacts:
    return HostFacts(instances_dir=tmp_path_factory.mktemp("hlacc-instances"))


def by_what(findings: list[Finding]) -> dict[str, Finding]:
    whats = [f.what for f in findings]
    assert len(whats) == len(set(whats)), whats
    return {f.what: f for f in findings}


def version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def check_common(found: dict[str, Finding], conn: object) -> None:
    lib = conn.getLibVersion()  # type: ignore[attr-defined]
    hv = conn.getVersion()  # type: ignore[attr-defined]
    assert found["libvirt"].level == "ok"
    assert found["libvirt"].detail == f"libvirt {version(lib)} answers on qemu:///system (QEMU {version(hv)})"
    assert found["QEMU"].level == "ok" and found["QEMU"].detail.startswith(shutil.which("qemu-system-x86_64") or "-")
    kvm = found["KVM"]  # whatever this host's KVM does (hang, abort, works): the promise, one line
    assert "\n" not in kvm.detail
    if kvm.ok:
        assert kvm.level == "ok" and kvm.detail.startswith("KVM works: a test guest reached userspace in ")
    else:
        assert kvm.level == "warn"  # software emulation works: a warning, not an error
        reasons = ("/dev/kvm exists but a test guest hung under KVM (", "QEMU cannot use KVM: ", "/dev/kvm is missing",
                   "/dev/kvm cannot be opened", "a test guest under KVM stopped before reaching userspace")
        assert any(kvm.detail.startswith(f"software emulation: guests run 5-10x slower; {r}") for r in reasons), kvm.detail
    bridge = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    nf = found["bridge netfilter"]
    assert nf.level == "info"
    if bridge.exists() and bridge.read_text().strip() == "1":
        assert "bridge-nf-call-iptables=1" in nf.detail and "hyperlab's guards" in nf.detail


def test_chapter_2_linux(conn: object, store: ImageStore, cache: Path, facts: HostFacts) -> None:
    findings = diagnose(load_lab("chapter-2-linux", ROOT), store, facts=facts, cache_path=cache, env={})
    found = by_what(findings)
    check_common(found, conn)
    assert found["nested virtualization"].level == "info"  # SVR1/SVR2 nest, but under TCG nothing to enable
    assert "UEFI firmware (OVMF)" not in found and "TPM (swtpm)" not in found
    for name in ("debian-12", "ticker"):
        image = found[f"image {name}"]
        assert image.level == "ok" and image.detail.startswith(str(store.path(name)))
    disk = found["disk"]  # one filesystem (the store and instances are both under /var/tmp and /tmp here)
    need = 2 * GiB + 6 * 512 * MiB + 4352 * MiB  # and the memory each node's start checkpoint keeps in its overlay
    assert "need ~9.2 GiB (6 node overlays with their checkpoints in" in disk.detail
    assert disk.ok == (free_bytes(facts.instances_dir) >= need)
    memory = found["memory"]
    assert memory.detail.endswith("need ~5 GiB (6 nodes 4.2 GiB + QEMU 128 MiB each under tcg)")
    assert memory.ok == (mem_available() >= (4352 + 6 * 128) * MiB)


def test_chapter_2(conn: object, store: ImageStore, cache: Path, facts: HostFacts) -> None:
    findings = diagnose(load_lab("chapter-2", ROOT), store, facts=facts, cache_path=cache, env={})
    found = by_what(findings)
    check_common(found, conn)
    windows = found["image windows-server-2022"]
    assert windows.level == "fail"
    assert windows.detail == f"not in the image store {store.root}"
    assert windows.fix == IMAGES["windows-server-2022"].build_hint == "lab image build windows-server-2022 --iso PATH"
    vhdx = found["image guest-vhdx"]  # the instructor's VHDX disk, built from their file
    assert not vhdx.ok and vhdx.fix == "lab image build guest-vhdx --vhdx PATH"
    nested = found["nested virtualization"]  # Hyper-V cannot run under software emulation
    assert not nested.ok and "SVR1, SVR2 run Hyper-V" in nested.detail
    assert any_failed(findings)
    ovmf = found["UEFI firmware (OVMF)"]
    present = all(p.is_file() for p in OVMF) and any(Path("/usr/share/qemu/firmware").glob("*.json"))
    assert ovmf.ok == present
    assert ovmf.fix == (None if present else "apt-get install ovmf")
    memory = found["memory"]
    assert memory.detail.endswith("need ~20.4 GiB (3 nodes 20 GiB + QEMU 128 MiB each under tcg)")
    disk = [f for f in findings if f.what == "disk"]
    assert len(disk) == 1 or mount_point(store.root) != mount_point(facts.instances_dir)
    assert "building guest-vhdx, windows-server-2022 in" in " ".join(f.detail for f in disk)


def test_libvirt_unreachable_is_a_failure_with_the_setup_command(store: ImageStore) -> None:
    hung = AccelReport("tcg", "hung", "/dev/kvm exists but a test guest hung under KVM (no kernel output after 15 s)")
    sock = f"/var/tmp/hlacc-{uuid.uuid4().hex[:8]}-nosuch.sock"
    found = by_what(diagnose(None, store, uri=f"qemu+unix:///system?socket={sock}", accel=hung, env={}))
    assert found["libvirt"].level == "fail"
    assert found["libvirt"].detail.startswith("cannot connect to libvirt at qemu+unix:///system")
    assert found["libvirt"].fix == "bash scripts/setup-host.sh"
    assert not any(f.what.startswith("image ") for f in found.values())  # no lab: host checks only


# ------------------------------------------------------------------- /dev/kvm for QEMU's user


def _qemu_credentials(conn: object) -> tuple[int, int, set[int]]:
    """uid, gid and groups of a real QEMU started by libvirtd: a transient domain that boots nothing."""
    name = f"hlacc-doctor-{uuid.uuid4().hex[:8]}"
    xml = (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
           "<os><type arch='x86_64'>hvm</type></os><devices/></domain>")
    dom = conn.createXML(xml, 0)  # type: ignore[attr-defined]
    try:
        pid = int(Path(f"/run/libvirt/qemu/{name}.pid").read_text())
        status = Path(f"/proc/{pid}/status").read_text()
    finally:
        dom.destroy()
    fields = {line.split(":")[0]: line.split(":", 1)[1].split() for line in status.splitlines()}
    return int(fields["Uid"][0]), int(fields["Gid"][0]), {int(g) for g in fields["Groups"]}


def _kernel_allows(path: Path, uid: int, gid: int, groups: set[int]) -> bool:
    def drop() -> None:
        os.setgroups(sorted(groups))
        os.setgid(gid)
        os.setuid(uid)

    # `<>` opens read-write, as QEMU opens /dev/kvm; /bin/sh because QEMU's user may not reach our python
    proc = subprocess.run(["/bin/sh", "-c", 'exec 3<>"$1"', "sh", str(path)], preexec_fn=drop, capture_output=True, check=False)
    return proc.returncode == 0


@pytest.mark.vm
def test_kvm_device_access_matches_what_the_kernel_lets_qemus_user_do(conn: object) -> None:
    """A copy of /dev/kvm's device node (never /dev/kvm itself: other guests use it) with the modes
    of a host without udev (root:root 0600) and with udev's rule (root:kvm 0660)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mknod, switching to QEMU's user)")
    uid, gid, groups = _qemu_credentials(conn)
    folder = Path(tempfile.mkdtemp(prefix="hlacc-dev-", dir="/var/tmp"))
    try:
        folder.chmod(0o755)
        node = folder / "kvm"
        os.mknod(node, 0o600 | 0o020000, os.stat("/dev/kvm").st_rdev)  # S_IFCHR
        os.chown(node, 0, 0)
        os.chmod(node, 0o600)
        without_udev = check_kvm_access(node)
        assert without_udev is not None and without_udev.level == "fail"
        assert without_udev.detail.startswith("root:root 0600: QEMU's user libvirt-qemu cannot open it")
        assert without_udev.fix == KVM_FIX == "chown root:kvm /dev/kvm && chmod 0660 /dev/kvm"
        assert _kernel_allows(node, uid, gid, groups) is False

        import grp

        os.chown(node, 0, grp.getgrnam("kvm").gr_gid)
        os.chmod(node, 0o660)
        fixed = check_kvm_access(node)
        assert fixed is not None and fixed.ok
        assert _kernel_allows(node, uid, gid, groups) is True
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    real = check_kvm_access()
    assert real is not None and real.ok == _kernel_allows(Path("/dev/kvm"), uid, gid, groups)
