"""Steps golden-image and overlays (seed 000): a read-only golden qcow2 and thin overlays backed by it."""

from __future__ import annotations

import shlex

import pytest


@pytest.mark.step("golden-image")
def test_golden_image_is_the_tiny_disk(hv):
    """golden/tiny.qcow2 is a qcow2 image of its own with the tiny disk's content"""
    layers = hv.chain(hv.GOLDEN)
    assert isinstance(layers, list), f"{hv.GOLDEN} is not a disk image on HV1: {layers}"
    assert layers[0].get("format") == "qcow2", f"{hv.GOLDEN} is a {layers[0].get('format')} image; expected qcow2"
    assert len(layers) == 1, (f"{hv.GOLDEN} is an overlay of {hv.backing_of(layers)}; a golden image stands alone "
                              "(no backing file)")
    same = hv.sh(f"qemu-img compare -U {shlex.quote(hv.GOLDEN)} {shlex.quote(hv.DELIVERED)}")
    assert same.ok, (f"{hv.GOLDEN} does not hold the same disk content as {hv.DELIVERED} "
                     f"(qemu-img compare: {(same.stdout or same.stderr).strip()[:200]}); copy that image")


@pytest.mark.step("golden-image")
def test_golden_image_is_read_only(hv):
    """golden/tiny.qcow2 is read-only (no write permission for anyone)"""
    info = hv.stat(hv.GOLDEN)
    assert info is not None, f"{hv.GOLDEN} does not exist on HV1"
    assert info["kind"] == "regular file", f"{hv.GOLDEN} is a {info['kind']}; expected a regular file"
    assert info["mode"] & 0o222 == 0, f"{hv.GOLDEN} has mode {info['mode']:o}; expected no write bits (444)"


def check_overlay(hv, vm: str) -> None:
    path = hv.overlay(vm)
    layers = hv.chain(path)
    assert isinstance(layers, list), f"{path} is not a disk image on HV1: {layers}"
    assert layers[0].get("format") == "qcow2", f"{path} is a {layers[0].get('format')} image; expected qcow2"
    backing = hv.backing_of(layers)
    assert backing == hv.GOLDEN, (f"{path} is backed by {backing or 'nothing (a full disk, not an overlay)'}; "
                                  f"expected {hv.GOLDEN}")
    assert layers[0].get("backing-filename-format") == "qcow2", (
        f"{path} does not record its backing file's format (it is {layers[0].get('backing-filename-format')}); "
        "create it with -F qcow2")
    assert len(layers) == 2, f"{path} has a backing chain of {len(layers)} images; expected {path} -> {hv.GOLDEN}"


@pytest.mark.step("overlays")
def test_vm1_overlay(hv):
    """active/vm1.qcow2 is a qcow2 overlay of the golden image"""
    check_overlay(hv, "vm1")


@pytest.mark.step("overlays")
def test_vm2_overlay(hv):
    """active/vm2.qcow2 is a qcow2 overlay of the golden image"""
    check_overlay(hv, "vm2")
