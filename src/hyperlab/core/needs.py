"""What one instance of a lab asks of a host: memory, CPUs, disk and images (pure).

`lab doctor` compares it with this host; `lab class plan` and `lab capacity` with every host of
an inventory. One set of rules for both, so that a class placed on a host is a class its doctor
accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hyperlab.core.catalog import IMAGES
from hyperlab.core.load import LoadedLab

GiB = 1 << 30
MiB = 1 << 20
DISK_BASE = 2 * GiB  # headroom on the instances' filesystem: logs, seed media, overlays growing
DISK_PER_NODE = 512 * MiB  # a thin overlay starts at ~200 KiB; this is its first hours of writes
# Space a build of the image takes in the store (peak, scratch included), estimated from builds here:
# debian-12: 313 MB root + raw disk + 650 MB qcow2; tiny: the kernel package unpacked + 16 MB of files.
# guest-vhdx: the instructor's VHDX (a sysprepped 2003 disk is ~2 GiB) twice while it is built
BUILD_SPACE = {"debian-12": 2 * GiB, "tiny": 256 * MiB, "ticker": 1 * MiB, "guest-vhdx": 8 * GiB}
BUILD_SPACE_WINDOWS = 20 * GiB  # an installed Windows Server qcow2 (the ISO is the user's)
# QEMU's own memory per guest on top of the guest's RAM: under TCG the 64 MiB translation cache hyperlab
# sets plus QEMU itself (FACTS: a 256 MiB guest's whole QEMU was 300-310 MB RSS); under KVM no cache.
OVERHEAD_TCG = 128 * MiB
OVERHEAD_KVM = 64 * MiB


@dataclass(frozen=True)
class Needs:
    """What a lab asks of the host, read from its topology (pure)."""

    nodes: tuple[str, ...]
    memory: int  # sum of the nodes' memory (nested guests live inside it)
    images: tuple[str, ...]  # catalog images: every node's, and nested guests' when hyperlab builds them
    nested: tuple[str, ...]
    uefi: tuple[str, ...]
    secure_boot: tuple[str, ...]
    tpm: tuple[str, ...]
    nested_windows: tuple[str, ...] = ()  # Hyper-V hosts: they need real VT-x/AMD-V, which emulation lacks
    evmcs: dict[str, bool | None] = field(default_factory=dict)  # Hyper-V hosts: their `evmcs:` (None: the default)
    vcpus: int = 0  # sum of the nodes' virtual CPUs
    checkpoint_memory: int = 0  # memory of the nodes that keep a `start` checkpoint (it lands in their overlay)


def lab_needs(loaded: LoadedLab) -> Needs:
    nodes = loaded.topology.topology.nodes
    images = {n.image for n in nodes.values()} | {d.image for n in nodes.values() for d in n.disks if d.image}
    images |= {g.image for g in loaded.lab.guests.values() if g.image in IMAGES}
    return Needs(
        nodes=tuple(nodes),
        memory=sum(n.memory for n in nodes.values()),
        images=tuple(sorted(images)),
        nested=tuple(name for name, n in nodes.items() if n.nested),
        uefi=tuple(name for name, n in nodes.items() if n.firmware == "uefi"),
        secure_boot=tuple(name for name, n in nodes.items() if n.secure_boot),
        tpm=tuple(name for name, n in nodes.items() if n.tpm),
        nested_windows=tuple(name for name, n in nodes.items()
                             if n.nested and n.image in IMAGES and IMAGES[n.image].os == "windows"),
        evmcs={name: n.evmcs for name, n in nodes.items() if n.nested and n.image in IMAGES and IMAGES[n.image].os == "windows"},
        vcpus=sum(n.vcpus for n in nodes.values()),
        # core.checkpoints.no_checkpoint's rule: UEFI and TPM nodes keep their state outside the overlay
        checkpoint_memory=sum(n.memory for n in nodes.values() if n.firmware != "uefi" and not n.tpm),
    )


def build_space(image: str) -> int:
    if image in BUILD_SPACE:
        return BUILD_SPACE[image]
    spec = IMAGES.get(image)
    if spec is not None and spec.os == "windows":
        return BUILD_SPACE_WINDOWS
    return 2 * GiB


def instance_disk(needs: Needs) -> int:
    """Bytes one instance's overlays may take: each node's first hours of writes, and the memory its
    `start` checkpoint keeps inside the overlay."""
    return DISK_PER_NODE * len(needs.nodes) + needs.checkpoint_memory


def disk_needed(needs: Needs, missing_images: list[str] | tuple[str, ...] = ()) -> tuple[int, int]:
    """(bytes on the instances' filesystem, bytes on the store's filesystem) for one instance."""
    return DISK_BASE + instance_disk(needs), sum(build_space(i) for i in missing_images)


def memory_needed(needs: Needs, accel: str) -> int:
    overhead = OVERHEAD_TCG if accel == "tcg" else OVERHEAD_KVM
    return needs.memory + overhead * len(needs.nodes)
