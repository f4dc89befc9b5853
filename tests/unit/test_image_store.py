"""Fast tests of the image store: no libvirt, no builds (qemu-img is used when present)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hyperlab.host.facts import DEFAULT_ROOT, ENV_ROOT
from hyperlab.images.store import ImageError, ImageInUse, ImageManifest, ImageMissing, ImageStore, InvalidImageName, parse_backing_chain, validate_name, write_atomic

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")

SHA = "0" * 64


def manifest(name: str = "debian-12", **kw) -> ImageManifest:
    base = dict(name=name, os="linux", size=1, sha256=SHA)
    base.update(kw)
    return ImageManifest(**base)


def fake_image(store: ImageStore, name: str, **kw) -> ImageManifest:
    store.ensure_root()
    store.path(name).write_bytes(b"not really qcow2")
    m = manifest(name, **kw)
    store.write_manifest(m)
    return m


# ------------------------------------------------------------------ root selection
def test_default_root(monkeypatch):
    monkeypatch.delenv(ENV_ROOT, raising=False)
    assert ImageStore().root == DEFAULT_ROOT
    assert DEFAULT_ROOT == Path("/var/lib/libvirt/images/hyperlab")


def test_env_overrides_root(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_ROOT, str(tmp_path / "imgs"))
    assert ImageStore().root == tmp_path / "imgs"


def test_explicit_root_wins_over_env(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_ROOT, "/nonexistent")
    assert ImageStore(tmp_path).root == tmp_path


def test_paths(tmp_path):
    s = ImageStore(tmp_path)
    assert s.path("debian-12") == tmp_path / "debian-12.qcow2"
    assert s.manifest_path("tiny") == tmp_path / "tiny.json"


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("name", ["debian-12", "tiny", "windows-server-2022", "a", "x.y_z"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "Debian", "-x", ".hidden", "a" * 64, "a..b", "sp ace"])
def test_invalid_names(name, tmp_path):
    with pytest.raises(InvalidImageName):
        validate_name(name)
    with pytest.raises(InvalidImageName):
        ImageStore(tmp_path).path(name)


# ------------------------------------------------------------------ manifest model
def test_manifest_roundtrip_and_utc():
    m = manifest(
        packages=["systemd", "openssh-server"],
        kernel="debian-12.vmlinuz",
        initrd="debian-12.initrd",
        cmdline="root=/dev/vda rw console=ttyS0",
    )
    assert m.build_date.tzinfo is not None and m.build_date.utcoffset().total_seconds() == 0
    data = json.loads(m.model_dump_json())
    # ISO-8601 UTC on disk
    assert data["build_date"].endswith("Z") or data["build_date"].endswith("+00:00")
    assert datetime.fromisoformat(data["build_date"].replace("Z", "+00:00")).tzinfo is not None
    back = ImageManifest.model_validate_json(m.model_dump_json())
    assert back == m
    assert back.direct_kernel_boot


def test_manifest_naive_date_becomes_utc():
    m = manifest(build_date=datetime(2025, 1, 2, 3, 4, 5))
    assert m.build_date == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_manifest_rejects_bad_values():
    with pytest.raises(ValueError):
        manifest(os="plan9")
    with pytest.raises(ValueError):
        manifest(sha256="abc")
    with pytest.raises(ValueError):
        manifest(backing="../x")
    with pytest.raises(ValueError):
        manifest(size=-1)


def test_manifest_ignores_unknown_fields():
    raw = manifest().model_dump()
    raw["future_field"] = 1
    assert ImageManifest.model_validate(raw).name == "debian-12"


# ------------------------------------------------------------------ get / missing
def test_get_missing_names_the_fix(tmp_path):
    s = ImageStore(tmp_path)
    with pytest.raises(ImageMissing) as e:
        s.get("debian-12")
    assert "lab image build debian-12" in str(e.value)
    assert "\n" not in str(e.value)


def test_get_requires_both_files(tmp_path):
    s = ImageStore(tmp_path)
    s.write_manifest(manifest())
    with pytest.raises(ImageMissing):
        s.get("debian-12")  # manifest without the disk
    s.path("debian-12").write_bytes(b"x")
    assert s.get("debian-12").name == "debian-12"


def test_damaged_manifest_is_a_clear_error(tmp_path):
    s = ImageStore(tmp_path)
    s.path("x").write_bytes(b"x")
    s.manifest_path("x").write_text("{not json")
    with pytest.raises(ImageError, match="--force"):
        s.get("x")


# ------------------------------------------------------------------ atomic write
def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "m.json"
    write_atomic(p, "one")
    write_atomic(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in tmp_path.iterdir()] == ["m.json"]
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_write_atomic_failure_keeps_old(tmp_path, monkeypatch):
    p = tmp_path / "m.json"
    write_atomic(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(p, "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["m.json"]


# ------------------------------------------------------------------ qemu-img parsing
def test_parse_backing_chain_list():
    out = [
        {"filename": "/o/n.qcow2", "format": "qcow2", "virtual-size": 10, "actual-size": 2,
         "backing-filename": "/s/debian-12.qcow2"},
        {"filename": "/s/debian-12.qcow2", "format": "qcow2", "virtual-size": 10, "actual-size": 9},
    ]
    layers = parse_backing_chain(out)
    assert [layer.filename for layer in layers] == ["/o/n.qcow2", "/s/debian-12.qcow2"]
    assert layers[0].actual_size == 2 and layers[1].virtual_size == 10


def test_parse_backing_chain_single_object():
    assert parse_backing_chain({"filename": "a"})[0].filename == "a"


def test_parse_backing_chain_garbage():
    with pytest.raises(ImageError):
        parse_backing_chain([{"nope": 1}])


# ------------------------------------------------------------------ remove / dependents
def test_remove_deletes_side_files(tmp_path):
    s = ImageStore(tmp_path)
    fake_image(s, "debian-12", kernel="debian-12.vmlinuz", initrd="debian-12.initrd")
    (tmp_path / "debian-12.vmlinuz").write_bytes(b"k")
    (tmp_path / "debian-12.initrd").write_bytes(b"i")
    s.remove("debian-12")
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_remove_missing(tmp_path):
    with pytest.raises(ImageMissing):
        ImageStore(tmp_path).remove("nothing")


def test_remove_refuses_backing_of_role_image(tmp_path):
    s = ImageStore(tmp_path)
    fake_image(s, "debian-12")
    fake_image(s, "samba-dc", backing="debian-12")
    assert s.dependents("debian-12") == ["samba-dc"]
    with pytest.raises(ImageInUse):
        s.remove("debian-12")
    s.remove("samba-dc")
    s.remove("debian-12")


def test_lock_is_exclusive(tmp_path):
    s = ImageStore(tmp_path)
    with s.lock("x"):
        with pytest.raises(ImageError, match="another process"):
            with s.lock("x"):
                pass
    with s.lock("x"):
        pass


# ------------------------------------------------------------------ with qemu-img
@needs_qemu_img
def test_finish_overlay_and_list(tmp_path):
    from hyperlab.images.store import qemu_img

    s = ImageStore(tmp_path / "store")
    s.ensure_root()
    qemu_img("create", "-q", "-f", "qcow2", str(s.path("base")), "64M")
    m = s.finish("base", os_name="linux", builder="test", packages=["b", "a"])
    assert m.packages == ["a", "b"]
    assert m.virtual_size == 64 << 20
    assert m.size == s.path("base").stat().st_size
    assert stat.S_IMODE(s.path("base").stat().st_mode) == 0o444
    assert s.verify("base")
    assert s.get("base") == m

    ov = s.create_overlay("base", tmp_path / "nodes" / "n1.qcow2")
    assert ov.stat().st_size < 1 << 20
    layers = s.qemu_info(ov)
    assert [Path(layer.filename) for layer in layers] == [ov, s.path("base")]
    with pytest.raises(FileExistsError):
        s.create_overlay("base", ov)
    with pytest.raises(ImageMissing):
        s.create_overlay("nope", tmp_path / "n2.qcow2")

    # a role image that is an overlay inside the store shows its chain
    s.create_overlay("base", s.path("role"))
    s.finish("role", os_name="linux", builder="test", backing="base")
    rows = {i.name: i for i in s.images()}
    assert set(rows) == {"base", "role"}
    assert rows["base"].backing_chain == [] and rows["base"].read_only
    assert rows["role"].backing_chain == ["base.qcow2"]
    assert rows["role"].manifest is not None and rows["role"].manifest.backing == "base"
    assert rows["base"].virtual_size == 64 << 20


@needs_qemu_img
def test_list_reports_image_without_manifest(tmp_path):
    from hyperlab.images.store import qemu_img

    s = ImageStore(tmp_path)
    qemu_img("create", "-q", "-f", "qcow2", str(s.path("stray")), "1M")
    (row,) = s.images()
    assert row.name == "stray" and row.manifest is None and "lab image build stray" in (row.error or "")


def test_list_empty_store(tmp_path):
    assert ImageStore(tmp_path / "none").images() == []


# ------------------------------------------------------------------ builder helpers (pure)
def test_host_apt_sources_picks_deb822_with_suite(tmp_path):
    from hyperlab.images.common import host_apt_sources

    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    (d / "other.sources").write_text("Types: deb\nURIs: https://x.example\nSuites: nodistro\nComponents: main\n")
    (d / "off.sources").write_text("Enabled: no\nTypes: deb\nURIs: http://y\nSuites: bookworm\nComponents: main\n")
    (d / "old.list.disabled-by-farm").write_text("deb http://z bookworm main\n")
    assert host_apt_sources("bookworm", apt_dir=tmp_path) == [d / "debian.sources"]


def test_host_apt_sources_one_line_format(tmp_path):
    from hyperlab.images.common import host_apt_sources

    (tmp_path / "sources.list").write_text("# c\ndeb [arch=amd64] http://m/debian bookworm main\n")
    assert host_apt_sources("bookworm", apt_dir=tmp_path) == [tmp_path / "sources.list"]


def test_host_apt_sources_none_is_a_clear_error(tmp_path):
    from hyperlab.images.common import PrerequisiteError, host_apt_sources

    with pytest.raises(PrerequisiteError, match="bookworm"):
        host_apt_sources("bookworm", apt_dir=tmp_path)


def test_module_load_order_puts_dependencies_first():
    from hyperlab.images.tiny import parse_modules_dep, resolve_load_order

    dep = parse_modules_dep(
        "kernel/drivers/virtio/virtio.ko:\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
        "kernel/net/core/failover.ko:\n"
        "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/drivers/virtio/virtio.ko\n"
    )
    order = resolve_load_order(dep, ["virtio_pci", "virtio_blk", "virtio_net", "ext4"])  # ext4: built in
    names = [p.rsplit("/", 1)[1] for p in order]
    assert len(names) == len(set(names))
    for mod, deps in dep.items():
        if mod in order:
            assert all(order.index(d) < order.index(mod) for d in deps)
    assert "ext4.ko" not in names and names[-1] == "virtio_net.ko"


def test_mmdebstrap_progress_mapping():
    from hyperlab.images.common import mmdebstrap_progress, qemu_img_progress

    seen: list[float] = []
    on_line = mmdebstrap_progress(seen.append)
    for line in ["I: running apt-get update...", "Get:1 x", "I: installing remaining packages inside the chroot..."]:
        on_line(line)
    assert seen == [0.05, 0.6]
    seen.clear()
    qemu_img_progress(seen.append)("    (42.50/100%)")
    assert seen == [0.425]


def test_a_second_lab_up_waits_for_the_build_in_progress_and_uses_it(tmp_path: Path) -> None:
    import threading

    from hyperlab.images.registry import ensure_images
    from hyperlab.images.store import ImageManifest
    from hyperlab.images.ticker import KERNEL_SHA256

    store = ImageStore(tmp_path)
    seen: list[str] = []
    with store.lock("ticker"):  # another `lab up` is building the ticker
        waiter = threading.Thread(target=ensure_images, args=(store, {"ticker"}, lambda _n, phase: seen.append(phase)))
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive(), "it must wait for the build, not fail or build a second copy"
        store.path("ticker").write_bytes(b"disk")
        store.write_manifest(ImageManifest(name="ticker", os="linux", size=4, sha256="ab" * 32,
                                           notes={"kernel_sha256": KERNEL_SHA256}))
    waiter.join(10)
    assert not waiter.is_alive()
    assert "being built by another process: waiting for it" in seen
    assert store.path("ticker").read_bytes() == b"disk"  # the other build's result, not a rebuild


def test_a_ticker_from_an_older_kernel_is_rebuilt_and_a_current_one_kept(tmp_path: Path) -> None:
    from hyperlab.images.registry import ensure_images
    from hyperlab.images.ticker import KERNEL

    store = ImageStore(tmp_path)
    ensure_images(store, {"ticker"})
    manifest = store.get("ticker")
    # an older hyperlab's ticker: another kernel, a manifest without the current kernel's hash
    (tmp_path / "ticker.vmlinuz").chmod(0o644)
    (tmp_path / "ticker.vmlinuz").write_bytes(b"old kernel")
    manifest.notes.pop("kernel_sha256")
    store.write_manifest(manifest)
    seen: list[str] = []
    ensure_images(store, {"ticker"}, lambda _n, phase: seen.append(phase))
    assert (tmp_path / "ticker.vmlinuz").read_bytes() == KERNEL
    assert "kernel started" in seen
    seen.clear()
    ensure_images(store, {"ticker"}, lambda _n, phase: seen.append(phase))
    assert seen == [], "a current ticker is used as it is"


def test_every_image_a_lab_lacks_is_named_at_once_before_anything_is_built(tmp_path: Path) -> None:
    """chapter-2 needs two images only the user can build: naming one would reveal the other later."""
    from hyperlab.images.registry import ensure_images
    from hyperlab.images.store import ImagesMissing

    store = ImageStore(tmp_path)
    with pytest.raises(ImagesMissing) as info:
        ensure_images(store, {"ticker", "guest-vhdx", "windows-server-2022"})
    assert str(info.value).splitlines() == [
        f"image 'guest-vhdx' is not in the image store {tmp_path}; build it with: lab image build guest-vhdx --vhdx PATH",
        f"image 'windows-server-2022' is not in the image store {tmp_path}; build it with: "
        "lab image build windows-server-2022 --iso PATH"]
    assert not store.exists("ticker"), "nothing is built while the lab cannot be deployed anyway"
