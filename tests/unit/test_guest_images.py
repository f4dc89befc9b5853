"""Delivery of the nested guests' images into their host nodes (ops.guest_images.deliver_guest_images): no libvirt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hyperlab.ops import guest_images as delivery
from hyperlab.ops.guest_images import GUEST_IMAGE_DIR, deliver_guest_images, guest_image_files, guest_image_marker, guest_images
from hyperlab.guest.base import RunResult
from hyperlab.images.store import ImageManifest, ImageStore
from hyperlab.images.ticker import KERNEL_SHA256
from hyperlab.core.load import load_lab
from hyperlab.core.plan import plan

ROOT = Path(__file__).resolve().parents[2]
SHA = "ab" * 32


def tiny_store(root: Path, *, kernel: bool = True) -> ImageStore:
    store = ImageStore(root)
    store.ensure_root()
    store.path("tiny").write_bytes(b"disk")
    if kernel:
        store.file("tiny.vmlinuz").write_bytes(b"kernel")
        store.file("tiny.initrd").write_bytes(b"initrd")
    store.write_manifest(ImageManifest(name="tiny", os="linux", size=4, sha256=SHA,
                                       kernel="tiny.vmlinuz" if kernel else None, initrd="tiny.initrd" if kernel else None,
                                       cmdline="console=ttyS0 quiet" if kernel else None))
    return store


def ticker_store(root: Path) -> ImageStore:
    """A store with the ticker as it is built: a kernel, no initrd, no command line."""
    store = ImageStore(root)
    store.ensure_root()
    store.path("ticker").write_bytes(b"disk")
    store.file("ticker.vmlinuz").write_bytes(b"kernel")
    store.write_manifest(ImageManifest(name="ticker", os="linux", size=4, sha256=SHA, kernel="ticker.vmlinuz",
                                       notes={"kernel_sha256": KERNEL_SHA256}))
    return store


@pytest.mark.parametrize(("lab_id", "expected"), [
    ("chapter-1", {"HV1": ["tiny"]}),
    ("chapter-2-linux", {"SVR1": ["ticker"], "SVR2": ["ticker"]}),
    ("chapter-2", {}),  # Hyper-V hosts: the student's own disks, nothing from the store
])
def test_each_linux_host_gets_the_images_of_its_guests(lab_id: str, expected: dict[str, list[str]]) -> None:
    loaded = load_lab(lab_id, ROOT)
    assert guest_images(loaded.lab, plan(loaded, "x")) == expected


def test_a_lab_without_guests_delivers_nothing() -> None:
    loaded = load_lab(str(ROOT / "tests/data/labs/solo/lab.yaml"), ROOT)
    assert guest_images(loaded.lab, plan(loaded, "x")) == {}


def test_files_are_the_disk_kernel_initrd_and_the_command_line(tmp_path: Path) -> None:
    store = tiny_store(tmp_path)
    files = guest_image_files(store, store.get("tiny"))
    assert files == {"tiny.qcow2": store.path("tiny"), "tiny.vmlinuz": tmp_path / "tiny.vmlinuz",
                     "tiny.initrd": tmp_path / "tiny.initrd", "tiny.cmdline": b"console=ttyS0 quiet\n"}


def test_an_image_that_boots_from_its_disk_gives_only_the_disk(tmp_path: Path) -> None:
    store = tiny_store(tmp_path, kernel=False)
    assert guest_image_files(store, store.get("tiny")) == {"tiny.qcow2": store.path("tiny")}


def test_the_marker_lives_in_the_guest_and_names_the_golden_disk(tmp_path: Path) -> None:
    store = tiny_store(tmp_path)
    assert guest_image_marker(store.get("tiny")) == f"/var/lib/hyperlab/guest-image-tiny-{SHA[:12]}.done"


class FakeChannel:
    """A Linux guest as far as delivery sees it: files, and commands that only get recorded."""

    os = "linux"

    def __init__(self, node: str, files: dict[str, bytes]) -> None:
        self.node = node
        self.files = files
        self.commands: list[list[str]] = []

    def run(self, command: Any, timeout: float = 120) -> RunResult:
        if command[:2] == ["/bin/test", "-e"]:
            return RunResult(" ".join(command), 0 if command[2] in self.files else 1, "", "", 0.0)
        self.commands.append(command)
        return RunResult(" ".join(command), 0, "", "", 0.0)

    def write_file(self, path: str, data: bytes) -> None:
        self.files[path] = data


def test_delivery_writes_partial_files_renames_them_and_then_its_marker_once(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = ticker_store(tmp_path)
    loaded = load_lab("chapter-2-linux", ROOT)
    p = plan(loaded, "x")
    guests: dict[str, dict[str, bytes]] = {"SVR1": {}, "SVR2": {}}
    channels: dict[str, FakeChannel] = {}

    def fake_channel_for(_conn: object, node: Any) -> FakeChannel:
        assert node.name in guests, f"{node.name} has no guests and must get nothing"
        channels[node.name] = FakeChannel(node.name, guests[node.name])
        return channels[node.name]

    monkeypatch.setattr(delivery, "agent_channel", fake_channel_for)
    deliver_guest_images(None, loaded, p, only={"SVR1"}, store=store)  # type: ignore[arg-type]
    assert set(channels) == {"SVR1"}
    marker = guest_image_marker(store.get("ticker"))
    assert guests["SVR1"] == {f"{GUEST_IMAGE_DIR}/.ticker.qcow2.partial": b"disk",
                              f"{GUEST_IMAGE_DIR}/.ticker.vmlinuz.partial": b"kernel",
                              marker: b""}
    assert list(guests["SVR1"])[-1] == marker  # the marker only after every file
    rename = channels["SVR1"].commands[-1]
    assert rename[:2] == ["/bin/sh", "-c"] and rename[4:] == ["ticker.qcow2", "ticker.vmlinuz"]
    assert "chmod 0644" in rename[2] and "chown libvirt-qemu: .ticker.qcow2.partial" in rename[2]

    channels.clear()
    deliver_guest_images(None, loaded, p, store=store)  # type: ignore[arg-type]
    assert channels["SVR1"].commands == []  # its marker says done: nothing again
    assert marker in guests["SVR2"] and channels["SVR2"].commands
