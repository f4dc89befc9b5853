"""The images hyperlab knows: the one registry, image name -> what it is and what builds it.

Pure facts, used by validation and planning (which images exist, what they boot, whether they can
host guests), by `lab image build` (its phases and builder) and by `lab up` (what it may build by
itself). The builder is named, not imported: `hyperlab.images.registry` imports it when a build runs.
Adding an image is one line here and its builder module (with `PHASES` and the function named here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")  # a golden image's name (a file name in the store)
SHA256 = re.compile(r"[0-9a-f]{64}")  # a hex sha256: an image's checksum, a lab bundle's name


@dataclass(frozen=True)
class ImageSpec:
    name: str
    os: Literal["linux", "windows"]
    # kernel: direct kernel boot from the store; disk: firmware boots the disk; data: boots nothing, a node's extra disk
    boot: Literal["kernel", "disk", "data"]
    can_nest: bool  # can host its own guests (libvirt+QEMU inside, or the Hyper-V role)
    virtual_size: int  # bytes the guest sees on its system disk; overlays inherit it
    builder: str  # "module:function" under hyperlab.images
    automatic: bool = False  # `lab up` builds it when the store lacks it (it needs nothing from the user)
    build_args: str = ""  # what the user must give `lab image build` (the ISO, the VHDX)

    @property
    def build_hint(self) -> str:
        return f"lab image build {self.name}" + (f" {self.build_args}" if self.build_args else "")


_WINDOWS = "windows:build_windows"
IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec("debian-12", "linux", "kernel", True, 8 << 30, "debian:build_debian", automatic=True),
        ImageSpec("tiny", "linux", "kernel", False, 64 << 20, "tiny:build_tiny", automatic=True),
        ImageSpec("ticker", "linux", "kernel", False, 16 << 20, "ticker:build_ticker", automatic=True),
        # a data disk, not a system: an NTFS volume holding the instructor's VHDX (chapter-2's inner guests)
        ImageSpec("guest-vhdx", "windows", "data", False, 64 << 30, "guest_vhdx:build_guest_vhdx", build_args="--vhdx PATH"),
        ImageSpec("windows-server-2019", "windows", "disk", True, 64 << 30, _WINDOWS, build_args="--iso PATH"),
        ImageSpec("windows-server-2022", "windows", "disk", True, 64 << 30, _WINDOWS, build_args="--iso PATH"),
        ImageSpec("windows-server-2025", "windows", "disk", True, 64 << 30, _WINDOWS, build_args="--iso PATH"),
    )
}
SYSTEM_IMAGES = {name: spec for name, spec in IMAGES.items() if spec.boot != "data"}
DATA_IMAGES = {name: spec for name, spec in IMAGES.items() if spec.boot == "data"}
