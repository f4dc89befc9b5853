"""The images hyperlab knows how to build, and what each can do.

Pure facts used by validation and planning; the builders live in `hyperlab.images`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ImageSpec:
    name: str
    os: Literal["linux", "windows"]
    # kernel: direct kernel boot from the store; disk: firmware boots the disk; data: boots nothing, a node's extra disk
    boot: Literal["kernel", "disk", "data"]
    can_nest: bool  # can host its own guests (libvirt+QEMU inside, or the Hyper-V role)
    virtual_size: int  # bytes the guest sees on its system disk; overlays inherit it
    build_hint: str


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("debian-12", "linux", "kernel", True, 8 << 30, "lab image build debian-12"),
        ImageSpec("tiny", "linux", "kernel", False, 64 << 20, "lab image build tiny"),
        ImageSpec("ticker", "linux", "kernel", False, 16 << 20, "lab image build ticker"),
        # a data disk, not a system: an NTFS volume holding the instructor's VHDX (chapter-2's inner guests)
        ImageSpec("guest-vhdx", "windows", "data", False, 64 << 30, "lab image build guest-vhdx --vhdx PATH"),
        ImageSpec("windows-server-2019", "windows", "disk", True, 64 << 30, "lab image build windows-server-2019 --iso PATH"),
        ImageSpec("windows-server-2022", "windows", "disk", True, 64 << 30, "lab image build windows-server-2022 --iso PATH"),
        ImageSpec("windows-server-2025", "windows", "disk", True, 64 << 30, "lab image build windows-server-2025 --iso PATH"),
    )
}
SYSTEM_IMAGES = {name: spec for name, spec in IMAGES.items() if spec.boot != "data"}
DATA_IMAGES = {name: spec for name, spec in IMAGES.items() if spec.boot == "data"}
