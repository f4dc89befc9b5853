"""Build the ``tiny`` image: Debian's cloud kernel + a busybox initramfs + a small data disk.

For nested guests that must boot fast inside emulated hypervisors (a guest of a guest under
TCG): the whole system is the initramfs, there is no systemd, no guest agent.

Files in the store::

    tiny.vmlinuz   Debian's linux-image-cloud-amd64 kernel (same package as debian-12)
    tiny.initrd    gzip'd cpio: static busybox, /init, the virtio modules (in load order)
    tiny.qcow2     64 MiB ext4 data disk (/dev/vda in the guest), so migrations have a disk
                   to move and a counter that survives them

Both binaries come from Debian packages fetched with ``mmdebstrap --variant=extract`` from
the host's own apt sources (the same mirror as debian-12, never a hard-coded URL).

Guest conventions (what ``/init`` does):

* command line base ``console=ttyS0 quiet`` (manifest ``cmdline``); ``/init`` prints its own
  ``hyperlab-tiny: ...`` lines on the serial console;
* loads virtio_pci, virtio_blk, virtio_net (+ dependencies), ACPI button and evdev;
* network: ``ip=ADDR::GW:PREFIX_OR_NETMASK:HOSTNAME:IFACE:off`` (the kernel's format, IFACE
  defaults to eth0) configures a static address and prints ``hyperlab-tiny: eth0 ADDR/PREFIX``;
  without ``ip=`` (or with ``ip=dhcp``) udhcpc runs in the background on eth0;
  ``hostname=`` or ``systemd.hostname=`` sets the hostname;
* mounts the data disk ``/dev/vda`` on ``/data`` when present, increments
  ``/data/boot-count`` and syncs;
* prints ``hyperlab-tiny: ready boot=N uptime=S`` (the readiness marker to look for in the
  console log), then every 30 s ``hyperlab-tiny: up S s boot=N``;
* serves ``/www/index.html`` (hostname, boot count) with busybox httpd on port 80;
* ACPI power button (``virsh shutdown``): busybox acpid syncs, unmounts /data, powers off;
* keeps running forever: a root shell on the console is respawned (debugging; console only).
"""

from __future__ import annotations

import gzip
import os
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
    require_root,
    require_tools,
    run_logged,
    publish,
)
from hyperlab.images.store import ImageManifest, ImageStore

PHASES = ("fetch", "initramfs", "disk", "convert", "manifest")
PACKAGES = ["linux-image-cloud-amd64", "busybox-static"]
CMDLINE = "console=ttyS0 quiet"
DATA_DISK_SIZE = 64 << 20
MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "button", "evdev"]

INIT = r"""#!/bin/sh
# hyperlab tiny init (PID 1). See hyperlab/images/tiny.py.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp /data /var/run /var/log
mount -t devpts devpts /dev/pts
say() { echo "hyperlab-tiny: $*"; }

while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null
done < /etc/modules.order

IP=""; HN=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        ip=*) IP="${arg#ip=}" ;;
        hostname=*|systemd.hostname=*) HN="${arg#*=}" ;;
    esac
done

mask2prefix() {
    case "$1" in
        *.*) n=0; old=$IFS; IFS=.; set -- $1; IFS=$old
             for o in "$@"; do
                 while [ "$o" -gt 0 ]; do n=$((n + (o & 1))); o=$((o >> 1)); done
             done
             echo $n ;;
        "") echo 24 ;;
        *) echo "$1" ;;
    esac
}

ip link set lo up
case "$IP" in
    ""|dhcp|on|any)
        if [ -e /sys/class/net/eth0 ]; then
            ip link set eth0 up
            udhcpc -b -q -i eth0 -s /etc/udhcpc.script >/dev/null 2>&1
            say "eth0 dhcp"
        fi ;;
    *)
        old=$IFS; IFS=:; set -- $IP; IFS=$old
        addr=$1; gw=$3; prefix=$(mask2prefix "$4"); [ -n "$5" ] && HN=$5; dev=${6:-eth0}
        ip link set "$dev" up
        ip addr add "$addr/$prefix" dev "$dev" && say "$dev $addr/$prefix"
        [ -n "$gw" ] && ip route add default via "$gw" dev "$dev" ;;
esac
[ -n "$HN" ] && hostname "$HN"

BOOT=1
if [ -b /dev/vda ] && mount -t ext4 /dev/vda /data 2>/dev/null; then
    BOOT=$(( $(cat /data/boot-count 2>/dev/null || echo 0) + 1 ))
    echo "$BOOT" > /data/boot-count
    sync
else
    say "no data disk on /dev/vda"
fi

mkdir -p /www
printf 'hyperlab-tiny %s boot=%s\n' "$(hostname)" "$BOOT" > /www/index.html
httpd -p 80 -h /www
acpid -c /etc/acpi -l /var/log/acpid.log 2>/dev/null

say "ready boot=$BOOT uptime=$(cut -d' ' -f1 /proc/uptime)"
( while sleep 30; do say "up $(cut -d' ' -f1 /proc/uptime) s boot=$BOOT"; done ) &

while true; do
    setsid cttyhack sh -l
    sleep 1
done
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        for r in $router; do ip route add default via "$r" dev "$interface"; break; done
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        echo "hyperlab-tiny: $interface $ip/${mask:-24} (dhcp)" ;;
    deconfig) ip addr flush dev "$interface" ;;
esac
"""

POWEROFF = """#!/bin/sh
echo "hyperlab-tiny: power button, shutting down"
sync
umount /data 2>/dev/null
poweroff -f
"""


def build_tiny(
    store: ImageStore,
    name: str = "tiny",
    progress: Progress | None = None,
    force: bool = False,
    *,
    data_disk_size: int = DATA_DISK_SIZE,
    keep_work: bool = False,
) -> ImageManifest:
    """Build (or return the existing) ``tiny`` image in ``store``."""
    if store.exists(name) and not force:
        return store.get(name)
    require_root()
    require_tools("mmdebstrap", "mke2fs", "qemu-img", "cpio", "depmod")
    sources = host_apt_sources(DEBIAN_SUITE)
    runner = PhaseRunner(progress)

    with build_workspace(store, name, runner, keep_work=keep_work) as (work, log):
        with runner.phase("fetch") as update:
            ex = work / "extract"
            run_logged(
                ["mmdebstrap", "--variant=extract", "--mode=root", "--format=directory",
                 "--include=" + ",".join(PACKAGES), DEBIAN_SUITE, str(ex), *map(str, sources)],
                log,
                on_line=mmdebstrap_progress(update),
                what="mmdebstrap",
            )
        with runner.phase("initramfs"):
            kver, kernel = _kernel(ex)
            order = module_load_order(ex, kver, MODULES, log)
            initrd = work / "initrd"
            _make_initramfs(ex, kver, order, work / "initramfs", initrd, log)
            staged_kernel = Path(shutil.copy2(kernel, work / "vmlinuz"))
        with runner.phase("disk"):
            data = work / "data"
            data.mkdir()
            (data / "README").write_text(
                "hyperlab tiny data disk: /init counts boots in boot-count\n"
            )
            raw = work / "data.raw"
            run_logged(
                ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "tiny-data", "-E", "root_owner=0:0",
                 "-d", str(data), str(raw), str(data_disk_size // 1024) + "k"],
                log,
                what="mke2fs",
            )
        with runner.phase("convert"):
            staged_disk = work / "disk.qcow2"
            run_logged(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(staged_disk)],
                       log, what="qemu-img convert")
        manifest = publish(store, name, runner, kernel=staged_kernel, initrd=initrd, disk=staged_disk,
                           builder="tiny", packages=PACKAGES, cmdline=CMDLINE,
                           notes={"suite": DEBIAN_SUITE, "kernel_version": kver, "modules": order,
                                  "ready_marker": "hyperlab-tiny: ready boot=", "sources": [str(s) for s in sources]})
    return manifest


def _kernel(ex: Path) -> tuple[str, Path]:
    kernels = sorted((ex / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise BuildError(f"expected one kernel in the extracted packages, found {[k.name for k in kernels]}")
    return kernels[0].name[len("vmlinuz-"):], kernels[0]


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """``modules.dep`` -> {module path: [paths of its dependencies]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" in line:
            path, _, rest = line.partition(":")
            deps[path.strip()] = rest.split()
    return deps


def module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base.replace("-", "_")


def resolve_load_order(deps: dict[str, list[str]], wanted: list[str]) -> list[str]:
    """Paths of the ``wanted`` modules and their dependencies, each after its dependencies.

    Wanted names absent from ``deps`` are taken as built into the kernel and skipped.
    """
    by_name = {module_name(p): p for p in deps}
    order: list[str] = []
    seen: set[str] = set()

    def visit(path: str, stack: tuple[str, ...]) -> None:
        if path in seen:
            return
        if path in stack:
            raise BuildError(f"module dependency cycle: {' -> '.join(stack + (path,))}")
        for d in deps.get(path, []):
            visit(d, stack + (path,))
        seen.add(path)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path is not None:
            visit(path, ())
    return order


def module_load_order(ex: Path, kver: str, wanted: list[str], log: Path) -> list[str]:
    moddir = ex / "lib/modules" / kver
    if not (moddir / "modules.dep").exists():
        run_logged(["depmod", "-b", str(ex), kver], log, what="depmod")
    dep_map = parse_modules_dep((moddir / "modules.dep").read_text())
    builtin = (moddir / "modules.builtin").read_text() if (moddir / "modules.builtin").exists() else ""
    known = {module_name(p) for p in list(dep_map) + builtin.split()}
    missing = [m for m in wanted if m.replace("-", "_") not in known]
    if missing:
        raise BuildError(f"kernel {kver} has no modules {missing}")
    return resolve_load_order(dep_map, wanted)


def _make_initramfs(ex: Path, kver: str, order: list[str], tree: Path, out: Path, log: Path) -> None:
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc/acpi/PWRF", "etc/acpi/PWRB", "proc", "sys",
              "dev", "run", "tmp", "data", "lib/modules", "root"]:
        (tree / d).mkdir(parents=True, exist_ok=True)
    busybox = ex / "bin/busybox"
    if not busybox.exists():
        busybox = ex / "usr/bin/busybox"
    if not busybox.exists():
        raise BuildError("busybox-static did not provide /bin/busybox")
    shutil.copy2(busybox, tree / "bin/busybox")
    listing = subprocess.run([str(tree / "bin/busybox"), "--list-full"], capture_output=True, text=True)
    if listing.returncode != 0:
        raise BuildError(f"busybox --list-full failed: {listing.stderr.strip()[:200]}")
    for applet in listing.stdout.split():
        link = tree / applet
        if applet == "bin/busybox" or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for rel in order:
        src = ex / "lib/modules" / kver / rel
        data = src.read_bytes()
        if rel.endswith(".xz") or rel.endswith(".zst") or rel.endswith(".gz"):
            raise BuildError(f"compressed kernel module {rel}: not supported by the tiny initramfs")
        (tree / "lib/modules" / Path(rel).name).write_bytes(data)
    (tree / "etc/modules.order").write_text("".join(Path(r).name + "\n" for r in order))
    _script(tree / "init", INIT)
    _script(tree / "etc/udhcpc.script", UDHCPC_SCRIPT)
    _script(tree / "etc/acpi/PWRF/00000080", POWEROFF)
    _script(tree / "etc/acpi/PWRB/00000080", POWEROFF)
    (tree / "etc/hostname").write_text("tiny\n")
    (tree / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tree / "etc/group").write_text("root:x:0:\n")
    (tree / "etc/profile").write_text("export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nPS1='tiny# '\n")
    # cpio in newc format, owned by root, gzip'd (CONFIG_RD_GZIP=y)
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    proc = subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
        input=("\n".join(["."] + files) + "\n").encode(),
        capture_output=True,
        cwd=tree,
    )
    if proc.returncode != 0:
        raise BuildError(f"cpio failed: {proc.stderr.decode(errors='replace').strip()[:200]} -- log: {log}")
    with gzip.open(out, "wb", compresslevel=9) as f:
        f.write(proc.stdout)


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o755)


__all__ = ["build_tiny", "PHASES", "CMDLINE", "resolve_load_order", "parse_modules_dep"]

