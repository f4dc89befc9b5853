"""Build the ``debian-12`` golden image from Debian's packages (offline from the host's mirror).

How it is built (phases reported to ``progress``):

bootstrap
    ``mmdebstrap --variant=minbase --mode=root bookworm ROOT <host's .sources files>``: the
    mirror is whatever the host's apt is configured for, never a hard-coded URL. A setup hook
    sets ``MODULES=list`` and lists the virtio modules for the initramfs before the kernel is
    installed, so the kernel's own postinst builds a small initramfs that can mount /dev/vda.
configure
    Files and ``systemctl`` in a chroot (no daemons run, nothing mounted by us).
kernel
    ``/boot/vmlinuz-*`` and ``/boot/initrd.img-*`` are copied into the store as
    ``<name>.vmlinuz`` and ``<name>.initrd`` (read-only).
disk
    ``mke2fs -t ext4 -d ROOT`` on a sparse raw file: no partition table, no loop mount.
convert
    ``qemu-img convert -O qcow2``; the result replaces ``<name>.qcow2`` atomically, mode 0444.
manifest
    sha256, sizes, packages, kernel/initrd names and the cmdline base in ``<name>.json``.

Image conventions the rest of hyperlab relies on
------------------------------------------------

* **Boot**: direct kernel boot only. Kernel ``<name>.vmlinuz``, initrd ``<name>.initrd``,
  command line base ``root=/dev/vda rw console=ttyS0`` (manifest ``cmdline``); the disk is a
  bare ext4 filesystem on the first virtio disk (``/dev/vda``), no partition table, no
  bootloader. Per-node additions go on the command line: ``systemd.hostname=NAME`` (the image
  has no ``/etc/hostname``), ``systemd.wants=UNIT``, etc.
* **Identity**: ``/etc/machine-id`` is empty (each clone gets its own at first boot). SSH
  host keys are absent; ``hyperlab-ssh-hostkeys.service`` creates the missing ed25519 and
  ECDSA keys before ``ssh.service`` (sshd uses only those two: an RSA key takes seconds to
  generate under TCG). Host keys delivered by credentials are kept.
* **Network**: systemd-networkd is enabled with no ``.network`` file at all: the planner
  delivers ``/etc/systemd/network/*.network`` (and ``/etc/resolv.conf``, authorized keys, ...)
  at boot through the SMBIOS systemd credential ``tmpfiles.extra``
  (``io.systemd.credential.binary:tmpfiles.extra=BASE64``; use ``f+~`` to replace a file that
  exists in the image). systemd-resolved is not installed; ``/etc/resolv.conf`` is a
  placeholder. ``systemd-networkd-wait-online`` waits for *any* link, at most 30 s.
* **Agent**: qemu-guest-agent starts when its virtio port ``org.qemu.guest_agent.0`` appears
  (udev rule of the package); it is not "enabled".
* **Readiness**: ``hyperlab-ready.service`` (oneshot, WantedBy multi-user.target, after
  systemd-tmpfiles-setup, systemd-networkd, hyperlab-ssh-hostkeys and qemu-guest-agent)
  creates ``/run/hyperlab/ready``. A node is ready when the agent answers *and* that file
  exists.
* **Lab services** are installed but *disabled* (not masked), so nodes boot fast and a lab's
  start state enables what it needs (``systemctl enable --now ...``): ``DISABLED_UNITS``
  below (samba-ad-dc, smbd, nmbd, winbind, nfs-server, rpcbind, libvirtd and its sockets,
  virtlogd/virtlockd sockets, libvirt-guests, xrdp, xrdp-sesman, inetd (telnetd)), plus the
  apt timers, nfs-client.target and inetutils-syslogd (both pulled network-online.target
  into the boot; NFS mounts still work, rpc-statd starts on demand). A systemd preset file (``disable *`` after hyperlab's own units) stops systemd's
  first-boot ``preset-all`` from enabling them again, and ``systemd-firstboot.service`` is
  masked (it would otherwise wait on the serial console for a locale/timezone answer).
* **Accounts**: root is locked (no password). Access is by the guest agent, or by SSH with a
  key the planner delivers.
* **APT**: sources are the host's (as given to mmdebstrap); package lists are not kept.
* ``/etc/hyperlab/image`` records the image name and build date inside the guest.

The full package set bootstraps in about 70 s here (720 MB of files), so one image serves all
Linux roles; role images can still be built later as overlays (manifest ``backing``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from hyperlab.images.common import (
    DEBIAN_SUITE,
    BuildError,
    PhaseRunner,
    Progress,
    build_workspace,
    host_apt_sources,
    mmdebstrap_progress,
    qemu_img_progress,
    require_root,
    require_tools,
    run_logged,
    publish,
)
from hyperlab.images.store import ImageManifest, ImageStore, utc_now

PHASES = ("bootstrap", "configure", "kernel", "disk", "convert", "manifest")

CMDLINE = "root=/dev/vda rw console=ttyS0"
DISK_SIZE = 8 << 30  # virtual size of the root filesystem; qcow2 stores only what is used

BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "qemu-guest-agent",
    "nftables",
    "iproute2",
    "iputils-ping",
    "netcat-openbsd",
    "procps",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "python3",
]

LAB_PACKAGES = [
    # Samba / Active Directory labs
    "samba",
    "samba-ad-dc",
    "samba-ad-provision",  # the AD schema files `samba-tool domain provision` reads
    "winbind",
    "libnss-winbind",
    "libpam-winbind",
    "krb5-user",
    "smbclient",
    "ldb-tools",
    "bind9-dnsutils",  # dnsutils is only a transitional package in bookworm
    # NFS
    "nfs-kernel-server",
    "nfs-common",
    # nested virtualization
    "libvirt-daemon-system",
    "libvirt-clients",
    "qemu-system-x86",
    "qemu-utils",
    # remote access labs
    "inetutils-telnetd",
    "openbsd-inetd",
    "inetutils-telnet",
    "xrdp",
]

PACKAGES = BASE_PACKAGES + LAB_PACKAGES

INITRAMFS_MODULES = [
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "virtio_net",
    "virtio_console",
    "ext4",
]

ENABLED_UNITS = [
    "systemd-networkd.service",
    "ssh.service",
    "hyperlab-ssh-hostkeys.service",
    "hyperlab-ready.service",
]

# Installed, disabled (not masked): a lab's start state enables what it needs.
DISABLED_UNITS = [
    "samba-ad-dc.service",
    "smbd.service",
    "nmbd.service",
    "winbind.service",
    "nfs-server.service",
    "rpcbind.service",
    "rpcbind.socket",
    "libvirtd.service",
    "libvirtd.socket",
    "libvirtd-ro.socket",
    "libvirtd-admin.socket",
    "virtlogd.socket",
    "virtlogd-admin.socket",
    "virtlockd.socket",
    "virtlockd-admin.socket",
    "libvirt-guests.service",
    "xrdp.service",
    "xrdp-sesman.service",
    "inetd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    # pulled in network-online.target at boot (rpc-statd-notify via nfs-client.target, a
    # syslog daemon pulled in by inetutils): each waited for systemd-networkd-wait-online
    "nfs-client.target",
    "inetutils-syslogd.service",
    # scrubs LVM snapshots (there are none); cost ~19 s of CPU at every boot under TCG
    "e2scrub_reap.service",
    "e2scrub_all.timer",
]

MASKED_UNITS = ["systemd-firstboot.service"]

SSH_HOSTKEYS_UNIT = """\
[Unit]
Description=hyperlab: generate missing SSH host keys
Documentation=file:/etc/hyperlab/image
Before=ssh.service ssh.socket
After=systemd-tmpfiles-setup.service local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
# ed25519 and ECDSA only: an RSA key takes many seconds to generate under TCG
ExecStart=/bin/sh -c 'for t in ed25519 ecdsa; do f=/etc/ssh/ssh_host_$${t}_key; [ -s "$$f" ] || /usr/bin/ssh-keygen -q -t $$t -N "" -f "$$f"; done'

[Install]
WantedBy=multi-user.target
"""

READY_UNIT = """\
[Unit]
Description=hyperlab: node is booted (creates /run/hyperlab/ready)
After=systemd-tmpfiles-setup.service systemd-networkd.service hyperlab-ssh-hostkeys.service qemu-guest-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mkdir -p /run/hyperlab
ExecStart=/bin/touch /run/hyperlab/ready

[Install]
WantedBy=multi-user.target
"""

WAIT_ONLINE_DROPIN = """\
# hyperlab: a node is online when any link is; never block boot for long.
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30
"""

PRESET = (
    "# hyperlab: systemd's first boot (empty machine-id) runs preset-all; enable only these\n"
    + "".join(f"enable {u}\n" for u in ENABLED_UNITS)
    + "enable getty@.service\n"
    + "enable systemd-networkd.socket\n"
    + "disable *\n"
)

HOSTS = """\
127.0.0.1\tlocalhost
::1\t\tlocalhost ip6-localhost ip6-loopback
ff02::1\t\tip6-allnodes
ff02::2\t\tip6-allrouters
"""

SSHD_HOSTKEYS = """\
# hyperlab: host keys made at first boot by hyperlab-ssh-hostkeys.service (no RSA key:
# too slow to generate under software emulation)
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
"""

RESOLV_CONF = "# hyperlab: written per node at boot (tmpfiles.extra credential)\n"

FSTAB = "# hyperlab: root is /dev/vda (direct kernel boot, root=/dev/vda rw)\n/dev/vda / ext4 rw,relatime 0 0\n"


def build_debian(
    store: ImageStore,
    name: str = "debian-12",
    progress: Progress | None = None,
    force: bool = False,
    *,
    packages: list[str] | None = None,
    disk_size: int = DISK_SIZE,
    keep_work: bool = False,
) -> ImageManifest:
    """Build (or return the existing) Debian 12 golden image ``name`` in ``store``."""
    if store.exists(name) and not force:
        return store.get(name)
    require_root()
    require_tools("mmdebstrap", "mke2fs", "qemu-img", "chroot")
    sources = host_apt_sources(DEBIAN_SUITE)
    pkgs = list(packages or PACKAGES)
    runner = PhaseRunner(progress)

    with build_workspace(store, name, runner, keep_work=keep_work) as (work, log):
        root = work / "root"
        with runner.phase("bootstrap") as update:
            _bootstrap(root, work, pkgs, sources, log, update)
        with runner.phase("configure"):
            _configure(root, name, log)
        with runner.phase("kernel"):
            kver, kernel, initrd = _find_kernel(root, log)
            staged_kernel = Path(shutil.copy2(kernel, work / "vmlinuz"))
            staged_initrd = Path(shutil.copy2(initrd, work / "initrd"))
        notes = {
            "suite": DEBIAN_SUITE,
            "kernel_version": kver,
            "root_files_bytes": _tree_bytes(root),
            "installed_packages": _installed_count(root),
            "sources": [str(s) for s in sources],
        }
        with runner.phase("disk"):
            raw = work / "root.raw"
            run_logged(
                ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "hyperlab-root", "-E", "root_owner=0:0",
                 "-d", str(root), str(raw), str(disk_size // 1024) + "k"],
                log,
                what="mke2fs",
            )
        with runner.phase("convert") as update:
            staged_disk = work / "disk.qcow2"
            run_logged(
                ["qemu-img", "convert", "-p", "-f", "raw", "-O", "qcow2", str(raw), str(staged_disk)],
                log,
                on_line=qemu_img_progress(update),
                what="qemu-img convert",
            )
            raw.unlink()
        manifest = publish(store, name, runner, kernel=staged_kernel, initrd=staged_initrd, disk=staged_disk,
                           builder="debian", packages=pkgs, cmdline=CMDLINE, notes=notes)
    return manifest


# --------------------------------------------------------------------------- phases
def _bootstrap(root: Path, work: Path, pkgs: list[str], sources: list[Path], log: Path, update) -> None:
    hook_dir = work / "hook"
    hook_dir.mkdir()
    conf = hook_dir / "initramfs.conf"
    conf.write_text("# hyperlab: only the modules listed in modules.d/hyperlab\nMODULES=list\n")
    mods = hook_dir / "modules"
    mods.write_text("# hyperlab: direct kernel boot from a virtio disk\n" + "\n".join(INITRAMFS_MODULES) + "\n")
    q = shlex.quote
    setup_hook = (
        'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d" && '
        f'cp {q(str(conf))} "$1/etc/initramfs-tools/conf.d/hyperlab.conf" && '
        f'cp {q(str(mods))} "$1/usr/share/initramfs-tools/modules.d/hyperlab"'
    )
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        "--include=" + ",".join(pkgs),
        "--setup-hook=" + setup_hook,
        "--aptopt=Acquire::Languages \"none\"",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        DEBIAN_SUITE,
        str(root),
        *[str(s) for s in sources],
    ]
    run_logged(argv, log, on_line=mmdebstrap_progress(update), what="mmdebstrap")


def _chroot(root: Path, log: Path, *args: str) -> None:
    run_logged(["chroot", str(root), *args], log, what=f"chroot {args[0]}")


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.is_symlink():
        p.unlink()
    p.write_text(text)
    os.chmod(p, mode)


def _configure(root: Path, name: str, log: Path) -> None:
    # identity: every clone gets its own machine-id, host keys and hostname
    _write(root, "/etc/machine-id", "", 0o444)
    for stale in ["var/lib/dbus/machine-id", "etc/hostname"]:
        p = root / stale
        if p.exists() or p.is_symlink():
            p.unlink()
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, "/etc/hosts", HOSTS)
    _write(root, "/etc/resolv.conf", RESOLV_CONF)
    _write(root, "/etc/fstab", FSTAB)
    _write(root, "/etc/ssh/sshd_config.d/hyperlab-hostkeys.conf", SSHD_HOSTKEYS)

    # units
    _write(root, "/etc/systemd/system/hyperlab-ssh-hostkeys.service", SSH_HOSTKEYS_UNIT)
    _write(root, "/etc/systemd/system/hyperlab-ready.service", READY_UNIT)
    _write(root, "/etc/systemd/system/systemd-networkd-wait-online.service.d/hyperlab.conf", WAIT_ONLINE_DROPIN)
    _write(root, "/etc/systemd/system-preset/00-hyperlab.preset", PRESET)
    _write(
        root,
        "/etc/hyperlab/image",
        f"NAME={name}\nBUILD_DATE={utc_now().isoformat()}\nCMDLINE={CMDLINE!r}\n"
        "READY=/run/hyperlab/ready\n",
    )

    present = {p.name for d in ("lib/systemd/system", "etc/systemd/system") for p in (root / d).glob("*")}
    # SysV-only services (inetutils-syslogd): systemctl disables them through update-rc.d
    present |= {f"{p.name}.service" for p in (root / "etc/init.d").glob("*")}
    disable = [u for u in DISABLED_UNITS if u in present]
    _chroot(root, log, "systemctl", "enable", *ENABLED_UNITS)
    if disable:
        _chroot(root, log, "systemctl", "disable", *disable)
    _chroot(root, log, "systemctl", "mask", *MASKED_UNITS)
    _chroot(root, log, "systemctl", "set-default", "multi-user.target")
    _chroot(root, log, "usermod", "--lock", "root")

    # leave no build leftovers: caches and temp files go, log files are emptied (kept for
    # their owners and modes)
    for d in ["var/cache/apt", "var/lib/apt/lists", "tmp", "var/tmp"]:
        for p in list((root / d).rglob("*")) if (root / d).is_dir() else []:
            if (p.is_file() or p.is_symlink()) and p.name != "lock":
                p.unlink()
    for p in list((root / "var/log").rglob("*")) if (root / "var/log").is_dir() else []:
        if p.is_file() and not p.is_symlink():
            p.write_bytes(b"")


def _find_kernel(root: Path, log: Path) -> tuple[str, Path, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise BuildError(f"expected one kernel in {root}/boot, found {[k.name for k in kernels]}")
    kernel = kernels[0]
    kver = kernel.name[len("vmlinuz-"):]
    initrd = root / "boot" / f"initrd.img-{kver}"
    if not initrd.is_file():
        raise BuildError(f"no initrd for kernel {kver} in {root}/boot -- full log: {log}")
    # the initramfs must carry the virtio disk driver, else the root is never found
    listing = subprocess.run(
        ["chroot", str(root), "lsinitramfs", f"/boot/initrd.img-{kver}"],
        capture_output=True, text=True,
    )
    if listing.returncode != 0:
        raise BuildError(f"lsinitramfs failed: {listing.stderr.strip()[:200]}")
    if "virtio_blk.ko" not in listing.stdout:
        raise BuildError(f"initrd {initrd.name} lacks virtio_blk (MODULES=list hook not applied) -- log: {log}")
    return kver, kernel, initrd


def _tree_bytes(root: Path) -> int:
    out = subprocess.run(["du", "-sbx", str(root)], capture_output=True, text=True)
    try:
        return int(out.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


def _installed_count(root: Path) -> int:
    out = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f", "${Status}\n"], capture_output=True, text=True
    )
    return sum(1 for line in out.stdout.splitlines() if line.endswith(" installed"))


__all__ = ["build_debian", "PHASES", "PACKAGES", "CMDLINE", "DISABLED_UNITS"]
