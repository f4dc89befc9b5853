"""The image store's test guest for KVM detection, and detection with it.

`hyperlab.host.accel` decides how guests run from a test boot; the guest it boots is an image of
the store (the `tiny` image, whose ready line is its marker), found here, one floor up.
"""

from __future__ import annotations

from typing import Any

from hyperlab.host.accel import TCG_TIMEOUT, AccelReport, detect_accel, resolve_accel
from hyperlab.host.accel_probe import DEFAULT_MARKER, ProbeGuest, ProbeResult, run_probe
from hyperlab.images.store import ImageError, ImageStore


def find_test_guest(store: ImageStore | None = None) -> ProbeGuest | None:
    """The tiny image of the store (marker: its ready line); else any kernel-boot image."""
    store = store or ImageStore()
    for name in sorted(store.names(), key=lambda n: (n != "tiny", n)):
        try:
            manifest = store.get(name)
        except ImageError:
            continue
        if not (manifest.kernel and manifest.initrd):
            continue
        kernel, initrd = store.file(manifest.kernel), store.file(manifest.initrd)
        if not (kernel.is_file() and initrd.is_file()):
            continue
        marker = manifest.notes.get("ready_marker") if isinstance(manifest.notes, dict) else None
        return ProbeGuest(name, kernel, initrd, str(marker) if marker else DEFAULT_MARKER)
    return None


def detect(store: ImageStore | None = None, **options: Any) -> AccelReport:
    """`detect_accel` with the store's test guest (`options`: cache_path, use_cache, timeout, device, qemu)."""
    return detect_accel(lambda: find_test_guest(store), **options)


def resolve(choice: str, store: ImageStore | None = None, **options: Any) -> AccelReport:
    """`--accel auto|kvm|tcg` on this host, tested with the store's test guest when it must be."""
    return resolve_accel(choice, detect=lambda: detect(store), **options)


def probe_tcg(store: ImageStore | None = None, timeout: float = TCG_TIMEOUT, qemu: str | None = None) -> ProbeResult:
    """Boot the test guest under software emulation: proves the guest and its marker work."""
    guest = find_test_guest(store)
    if guest is None:
        raise FileNotFoundError("no test guest in the image store; build one with: lab image build tiny")
    return run_probe("tcg", guest, timeout, qemu)


__all__ = ["detect", "find_test_guest", "probe_tcg", "resolve"]
