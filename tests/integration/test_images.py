"""Build the golden images for real and boot them under libvirt (software emulation).

Slow: a debian-12 build takes ~1.5 min here, its first boot under TCG ~30 s. The store is
``$HYPERLAB_IMAGES`` when set (images already there are reused, never removed), otherwise a
fresh directory under /var/tmp that is removed afterwards. It is not under pytest's tmp_path:
QEMU runs as libvirt-qemu and must be able to traverse to the disks, and /tmp/pytest-of-root
is mode 0700.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import tempfile
import time
import uuid
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from hyperlab.host.facts import ENV_ROOT
from hyperlab.images.store import ImageStore

pytestmark = pytest.mark.images

libvirt = pytest.importorskip("libvirt")
libvirt_qemu = pytest.importorskip("libvirt_qemu")
# polling a booting guest's agent fails many times: keep libvirt from printing each error
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

URI = "qemu:///system"
BOOT_TIMEOUT = 300  # s, generous: several guests may boot at once on a 2-core CI machine


def _need_root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("image builds need root")
    for tool in ("mmdebstrap", "mke2fs", "qemu-img", "busybox"):
        if shutil.which(tool) is None and not Path("/bin/busybox").exists():
            pytest.skip(f"{tool} missing: run scripts/setup-host.sh")


def _open_libvirt():
    try:
        return libvirt.open(URI)
    except libvirt.libvirtError as e:
        pytest.skip(f"libvirtd not reachable on {URI}: {e}")


@pytest.fixture(scope="module")
def store():
    _need_root_and_tools()
    env = os.environ.get(ENV_ROOT)
    if env:
        s = ImageStore(Path(env))
        s.ensure_root()
        yield s
        return
    root = Path(tempfile.mkdtemp(prefix="hyperlab-images-", dir="/var/tmp"))
    os.chmod(root, 0o755)
    try:
        yield ImageStore(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def timings():
    t: dict[str, float] = {}
    yield t
    print("\nimage timings:", json.dumps(t, indent=1))


@pytest.fixture(scope="module")
def debian(store, timings):
    from hyperlab.images.debian import build_debian

    phases: list[str] = []
    t0 = time.monotonic()
    m = build_debian(store, "debian-12", progress=lambda p, f: phases.append(p))
    timings["debian-12 build s"] = round(time.monotonic() - t0, 1)
    timings["debian-12 qcow2 MiB"] = round(m.size / 2**20, 1)
    return m


@pytest.fixture(scope="module")
def tiny(store, timings):
    from hyperlab.images.tiny import build_tiny

    t0 = time.monotonic()
    m = build_tiny(store, "tiny")
    timings["tiny build s"] = round(time.monotonic() - t0, 1)
    timings["tiny qcow2 KiB"] = round(m.size / 1024, 1)
    timings["tiny initrd KiB"] = round(store.file(m.initrd).stat().st_size / 1024, 1)
    return m


@pytest.fixture()
def scratch():
    d = Path(tempfile.mkdtemp(prefix="hyperlab-test-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------- helpers
def domain_xml(
    name: str,
    *,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    disk: Path,
    console_log: Path,
    memory_mib: int = 512,
    oem_strings: list[str] = (),
    agent: bool = True,
    user_nic: bool = False,
) -> str:
    """Minimal TCG domain with direct kernel boot; local to this test on purpose."""
    sysinfo = ""
    smbios = ""
    if oem_strings:
        entries = "".join(f"<entry>{escape(s)}</entry>" for s in oem_strings)
        sysinfo = f"<sysinfo type='smbios'><oemStrings>{entries}</oemStrings></sysinfo>"
        smbios = "<smbios mode='sysinfo'/>"
    channel = (
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>" if agent else ""
    )
    nic = "<interface type='user'><model type='virtio'/></interface>" if user_nic else ""
    return f"""
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  {sysinfo}
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
    {smbios}
  </os>
  <features><acpi/><tcg><tb-cache unit='MiB'>64</tb-cache></tcg></features>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='pty'><log file='{console_log}' append='off'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    {channel}
    {nic}
    <memballoon model='none'/>
  </devices>
</domain>"""


def agent(dom, command: str, args: dict | None = None, timeout: int = 10):
    payload = {"execute": command}
    if args is not None:
        payload["arguments"] = args
    out = libvirt_qemu.qemuAgentCommand(dom, json.dumps(payload), timeout, 0)
    return json.loads(out)["return"]


def guest_exec(dom, path: str, *args: str, timeout: float = 60) -> tuple[int, bytes]:
    pid = agent(dom, "guest-exec", {"path": path, "arg": list(args), "capture-output": True})["pid"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = agent(dom, "guest-exec-status", {"pid": pid})
        if st.get("exited"):
            return st.get("exitcode", -1), base64.b64decode(st.get("out-data", ""))
        time.sleep(0.2)
    raise TimeoutError(f"{path} {args} did not finish in {timeout}s")


def wait_for(predicate, timeout: float, what: str, console_log: Path | None = None, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 - polling a booting guest
            last_exc = e
        time.sleep(interval)
    tail = ""
    if console_log and console_log.exists():
        tail = "\n".join(console_log.read_text(errors="replace").splitlines()[-40:])
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})\nconsole tail:\n{tail}")


def destroy(conn, name: str) -> None:
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    try:
        if dom.isActive():
            dom.destroy()
    finally:
        dom.undefine()


# ----------------------------------------------------------------------------- tests
def test_debian_manifest_and_files(store, debian):
    m = store.get("debian-12")
    assert m == debian
    assert m.name == "debian-12" and m.os == "linux" and m.builder == "debian"
    assert m.build_date.utcoffset().total_seconds() == 0
    assert {"systemd", "openssh-server", "qemu-guest-agent", "linux-image-cloud-amd64", "samba"} <= set(m.packages)
    assert "systemd-resolved" not in m.packages
    assert m.kernel == "debian-12.vmlinuz" and m.initrd == "debian-12.initrd"
    assert m.cmdline == "root=/dev/vda rw console=ttyS0"
    assert m.backing is None
    path = store.path("debian-12")
    assert m.size == path.stat().st_size
    assert store.verify("debian-12")
    for p in (path, store.file(m.kernel), store.file(m.initrd)):
        assert stat.S_IMODE(p.stat().st_mode) == 0o444, p
    (row,) = [i for i in store.images() if i.name == "debian-12"]
    assert row.backing_chain == [] and row.read_only and row.virtual_size == m.virtual_size


def test_debian_rebuild_is_a_noop(store, debian):
    from hyperlab.images.debian import build_debian

    before = store.path("debian-12").stat().st_mtime_ns
    calls: list[str] = []
    t0 = time.monotonic()
    assert build_debian(store, "debian-12", progress=lambda p, f: calls.append(p)) == debian
    assert time.monotonic() - t0 < 5
    assert calls == []
    assert store.path("debian-12").stat().st_mtime_ns == before


def test_overlay_is_thin_with_right_backing(store, debian, scratch, timings):
    t0 = time.monotonic()
    ov = store.create_overlay("debian-12", scratch / "node.qcow2")
    timings["overlay create ms"] = round((time.monotonic() - t0) * 1000, 1)
    assert ov.stat().st_size < 1 << 20
    layers = store.qemu_info(ov)
    assert [Path(layer.filename) for layer in layers] == [ov, store.path("debian-12")]
    assert layers[0].virtual_size == debian.virtual_size


def test_debian_boots_to_ready_under_tcg(store, debian, scratch, timings):
    conn = _open_libvirt()
    name = f"hyperlab-imgtest-{uuid.uuid4().hex[:8]}"
    overlay = store.create_overlay("debian-12", scratch / f"{name}.qcow2")
    console = scratch / "console.log"
    marker = f"hello from a credential {uuid.uuid4().hex}"
    tmpfiles = f"f+~ /etc/hyperlab/credential-test 0644 root root - {base64.b64encode(marker.encode()).decode()}\n"
    cred = "io.systemd.credential.binary:tmpfiles.extra=" + base64.b64encode(tmpfiles.encode()).decode()
    xml = domain_xml(
        name,
        kernel=store.file(debian.kernel),
        initrd=store.file(debian.initrd),
        cmdline=f"{debian.cmdline} systemd.hostname=imgtest",
        disk=overlay,
        console_log=console,
        oem_strings=[cred],
    )
    try:
        t0 = time.monotonic()
        dom = conn.defineXML(xml)
        dom.create()

        def agent_answers():
            return agent(dom, "guest-ping", timeout=5) == {}

        wait_for(agent_answers, BOOT_TIMEOUT, "the guest agent", console)
        t_agent = time.monotonic() - t0

        def ready():
            return guest_exec(dom, "/usr/bin/test", "-e", "/run/hyperlab/ready")[0] == 0

        wait_for(ready, BOOT_TIMEOUT, "/run/hyperlab/ready", console)
        timings["debian-12 boot-to-agent s"] = round(t_agent, 1)
        timings["debian-12 boot-to-ready s"] = round(time.monotonic() - t0, 1)

        rc, out = guest_exec(dom, "/bin/cat", "/etc/hyperlab/credential-test")
        assert rc == 0 and out.decode() == marker
        rc, out = guest_exec(dom, "/bin/hostname")
        assert out.decode().strip() == "imgtest"
        # a fresh identity, keys made at first boot, lab services installed but off
        rc, out = guest_exec(dom, "/bin/cat", "/etc/machine-id")
        assert rc == 0 and len(out.strip()) == 32
        assert guest_exec(dom, "/usr/bin/test", "-s", "/etc/ssh/ssh_host_ed25519_key")[0] == 0

        def services_up():
            out = guest_exec(dom, "/bin/systemctl", "is-active", "ssh.service", "systemd-networkd.service")[1]
            return out.decode().split() == ["active", "active"]

        wait_for(services_up, 120, "ssh and systemd-networkd active", console)
        timings["debian-12 boot-to-sshd s"] = round(time.monotonic() - t0, 1)
        rc, out = guest_exec(dom, "/bin/systemctl", "is-enabled", "smbd.service", "samba-ad-dc.service",
                             "libvirtd.service", "xrdp.service", "nfs-server.service", "inetd.service")
        assert set(out.decode().split()) == {"disabled"}, out
        rc, out = guest_exec(dom, "/bin/systemctl", "is-system-running")
        timings["debian-12 is-system-running"] = out.decode().strip()
        rc, out = guest_exec(dom, "/usr/bin/systemd-analyze", "blame")
        print("\nsystemd-analyze blame (top 12):\n" + "\n".join(out.decode().splitlines()[:12]))
        rc, out = guest_exec(dom, "/usr/bin/systemd-analyze")
        print(out.decode())
    finally:
        destroy(conn, name)
        conn.close()
    # libvirt's dynamic ownership may have chowned the golden file: the mode stays
    assert stat.S_IMODE(store.path("debian-12").stat().st_mode) == 0o444


def test_tiny_manifest_and_boot(store, tiny, scratch, timings):
    m = store.get("tiny")
    assert m.name == "tiny" and m.os == "linux" and m.builder == "tiny"
    assert m.kernel == "tiny.vmlinuz" and m.initrd == "tiny.initrd"
    for p in (store.path("tiny"), store.file(m.kernel), store.file(m.initrd)):
        assert stat.S_IMODE(p.stat().st_mode) == 0o444
    assert store.verify("tiny")

    conn = _open_libvirt()
    name = f"hyperlab-imgtest-tiny-{uuid.uuid4().hex[:8]}"
    overlay = store.create_overlay("tiny", scratch / f"{name}.qcow2")
    assert overlay.stat().st_size < 1 << 20
    console = scratch / "tiny-console.log"
    xml = domain_xml(
        name,
        kernel=store.file(m.kernel),
        initrd=store.file(m.initrd),
        cmdline=f"{m.cmdline} ip=192.0.2.10::192.0.2.1:24::eth0:off",
        disk=overlay,
        console_log=console,
        memory_mib=128,
        agent=False,
        user_nic=True,
    )
    try:
        dom = conn.defineXML(xml)
        for boot in (1, 2):
            t0 = time.monotonic()
            dom.create()

            def booted():
                return f"hyperlab-tiny: ready boot={boot}" in console.read_text(errors="replace")

            wait_for(booted, BOOT_TIMEOUT, f"tiny boot {boot}", console, interval=0.2)
            timings[f"tiny boot {boot} to ready s"] = round(time.monotonic() - t0, 1)
            text = console.read_text(errors="replace")
            assert "eth0 192.0.2.10/24" in text
            dom.destroy()
    finally:
        destroy(conn, name)
        conn.close()
