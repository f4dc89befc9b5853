"""The images of a lab's nested guests (`guests:` in lab.yaml), copied into their host nodes.

A Linux host node gets each image its guests use at GUEST_IMAGE_DIR, once per overlay: partial files
first, then one rename each, so an interrupted copy leaves no half-written image, and a marker tied
to the golden disk's content. Guests of a Windows host (Hyper-V) use disks the student makes there.
"""

from __future__ import annotations

from pathlib import Path

import libvirt

from hyperlab.core.fanout import fan_out
from hyperlab.core.load import LoadedLab
from hyperlab.core.model import Lab
from hyperlab.core.plan import Plan
from hyperlab.guest.agent import agent_channel
from hyperlab.guest.runner import STATE_DIR, Progress, guest_path_exists, must, quiet
from hyperlab.images.registry import ensure_images
from hyperlab.images.store import ImageManifest, ImageStore

GUEST_IMAGE_DIR = "/var/lib/libvirt/images"  # where libvirt in a nested host keeps its images
GUEST_IMAGE_OWNER = "libvirt-qemu"  # the user QEMU runs as in a Debian host


def guest_images(lab: Lab, plan: Plan) -> dict[str, list[str]]:
    """Linux host node -> the images its lab guests (`guests:`) use, sorted. Nodes without guests are absent."""
    wanted: dict[str, set[str]] = {}
    for guest in lab.guests.values():
        if guest.image is not None and plan.node(guest.host).os == "linux":
            wanted.setdefault(guest.host, set()).add(guest.image)
    return {host: sorted(images) for host, images in sorted(wanted.items())}


def guest_image_files(store: ImageStore, manifest: ImageManifest) -> dict[str, Path | bytes]:
    """What one image puts into a nested host: file name there -> the store file to copy, or the content.

    The disk; for a direct-kernel-boot image its kernel and initrd, and `<image>.cmdline` with the
    command line the kernel needs (the tiny guest prints its console lines, readiness included, on ttyS0).
    """
    files: dict[str, Path | bytes] = {f"{manifest.name}.qcow2": store.path(manifest.name)}
    for side in (manifest.kernel, manifest.initrd):
        if side:
            files[side] = store.file(side)
    if manifest.cmdline:
        files[f"{manifest.name}.cmdline"] = f"{manifest.cmdline}\n".encode()
    return files


def guest_image_marker(manifest: ImageManifest) -> str:
    """Marker of one delivery, in the host's state folder; tied to the golden disk's content."""
    return f"{STATE_DIR['linux']}/guest-image-{manifest.name}-{manifest.sha256[:12]}.done"


def deliver_guest_images(conn: libvirt.virConnect, loaded: LoadedLab, plan: Plan, only: set[str] | None = None,
                         progress: Progress = quiet, store: ImageStore | None = None) -> None:
    """Copy the images of the lab's guests into their host nodes, readable by everyone (0644); the disk
    owned by QEMU's user, as libvirt would leave it."""
    store = store or ImageStore()
    wanted = {host: images for host, images in guest_images(loaded.lab, plan).items() if only is None or host in only}
    ensure_images(store, {image for images in wanted.values() for image in images}, progress)

    def one(host: str) -> None:
        channel = agent_channel(conn, plan.node(host))
        for image in wanted[host]:
            manifest = store.get(image)
            marker = guest_image_marker(manifest)
            if guest_path_exists(channel, marker):
                continue
            progress(host, f"guest image {image}: copying into {GUEST_IMAGE_DIR}")
            must(channel.run(["mkdir", "-p", STATE_DIR["linux"], GUEST_IMAGE_DIR]))
            files = guest_image_files(store, manifest)
            for name, source in files.items():
                data = source if isinstance(source, bytes) else source.read_bytes()
                channel.write_file(f"{GUEST_IMAGE_DIR}/.{name}.partial", data)
            script = (f'cd {GUEST_IMAGE_DIR} && for f; do chmod 0644 ".$f.partial"; done && '
                      f'if id {GUEST_IMAGE_OWNER} >/dev/null 2>&1; then chown {GUEST_IMAGE_OWNER}: .{image}.qcow2.partial; fi && '
                      'for f; do mv -f ".$f.partial" "$f"; done')
            must(channel.run(["/bin/sh", "-c", script, "deliver", *files], timeout=120))
            channel.write_file(marker, b"")

    fan_out(one, list(wanted))
