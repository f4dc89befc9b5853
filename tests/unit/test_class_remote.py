"""What travels to a class host, tested without one: the lab bundle (made here, believed there only
when whole), a host's hello, the ssh command line, and a golden image's stream (real qemu-img)."""

from __future__ import annotations

import io
import json
import os
import shutil
import string
import subprocess
import tarfile
from pathlib import Path

import pytest

from hyperlab.core.errors import UsageError
from hyperlab.core.inventory import SshTarget
from hyperlab.core.load import load_lab
from hyperlab.images import transfer
from hyperlab.images.store import ImageStore, sha256_file
from hyperlab.remote.bundle import BUNDLES, BundleError, make_bundle, pack, present, receive
from hyperlab.remote.protocol import Hello, ProtocolError, fingerprint
from hyperlab.remote.reach import bundle_of
from hyperlab.remote.ssh import Ssh, remote_line

ROOT = Path(__file__).resolve().parents[2]
SOLO = ROOT / "tests" / "data" / "labs" / "solo" / "lab.yaml"


def solo_copy(tmp_path: Path) -> Path:
    """A checkout of its own holding the solo lab, its topology and its checkers."""
    data = ROOT / "tests" / "data"
    for part in ("labs/solo", "checkers/solo"):
        shutil.copytree(data / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "topologies").mkdir()
    shutil.copy(data / "topologies" / "solo.yaml", tmp_path / "topologies")
    return tmp_path / "labs" / "solo" / "lab.yaml"


# ------------------------------------------------------------------------------------ the bundle


def test_a_bundle_holds_the_lab_its_topology_and_checkers_under_one_content_hash(tmp_path: Path) -> None:
    bundle = make_bundle(load_lab(SOLO, ROOT))
    assert {"labs/solo/lab.yaml", "labs/solo/solutions/web.sh", "topologies/solo.yaml",
            "checkers/solo/test_web.py"} <= set(bundle.files)
    assert not any("__pycache__" in name for name in bundle.files)
    copy = solo_copy(tmp_path)
    assert make_bundle(load_lab(copy, tmp_path)).hash == bundle.hash  # content, not place
    script = tmp_path / "labs/solo/solutions/web.sh"
    script.chmod(script.stat().st_mode ^ 0o100)
    flipped = make_bundle(load_lab(copy, tmp_path)).hash
    (tmp_path / "checkers/solo/test_web.py").write_text("# changed\n")
    assert len({bundle.hash, flipped, make_bundle(load_lab(copy, tmp_path)).hash}) == 3


def test_a_link_that_leaves_the_lab_is_refused_before_anything_travels(tmp_path: Path) -> None:
    copy = solo_copy(tmp_path)
    (copy.parent / "secret").symlink_to("/etc/hostname")
    with pytest.raises(UsageError, match="is a link that leaves"):
        make_bundle(load_lab(copy, tmp_path))


def test_a_bundle_arrives_whole_under_its_hash_once(tmp_path: Path) -> None:
    bundle = make_bundle(load_lab(SOLO, ROOT))
    folder = receive(bundle.hash, io.BytesIO(pack(bundle)), tmp_path)
    assert folder == tmp_path / bundle.hash and present(tmp_path) == [bundle.hash]
    for name, source in bundle.files.items():
        assert (folder / name).read_bytes() == source.read_bytes()
        assert os.access(folder / name, os.X_OK) == os.access(source, os.X_OK)
    assert receive(bundle.hash, io.BytesIO(b"not read again"), tmp_path) == folder
    assert bundle.folder() == f"{BUNDLES}/{bundle.hash}"
    assert bundle_of(f"{BUNDLES}/{bundle.hash}/labs/solo/lab.yaml") == bundle.hash
    assert bundle_of(f"/srv/big-disk/hyperlab/bundles/{bundle.hash}/labs/solo/lab.yaml") == bundle.hash  # a symlinked folder
    assert bundle_of("/etc/labs/solo/lab.yaml") is None and bundle_of(f"{BUNDLES}/x/labs/solo/lab.yaml") is None


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, **extra: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in extra.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize("stream, why", [
    (tar_of((member("/etc/cron.d/x"), b"x")), "only plain files with relative names"),
    (tar_of((member("labs/../../../root/.ssh/authorized_keys"), b"x")), "only plain files with relative names"),
    (tar_of((member("labs/link", tarfile.SYMTYPE, linkname="/etc/shadow"), b"")), "only plain files"),
    (tar_of((member("labs/dev", tarfile.CHRTYPE), b"")), "only plain files"),
    (tar_of((member("labs/a"), b"1"), (member("labs/a"), b"2")), "twice"),
    (tar_of((member("labs/a"), b"1"), (member("labs/a/b"), b"2")), "cannot unpack"),
    (tar_of((member("labs/name with space"), b"1")), "only plain files with relative names"),
    (b"not a tar at all" * 100, "not a lab bundle"),
    (tar_of((member("labs/solo/lab.yaml"), b"id: solo\n")), "hashes to"),  # not what was announced
])
def test_a_hostile_bundle_is_refused_and_leaves_nothing(tmp_path: Path, stream: bytes, why: str) -> None:
    with pytest.raises(BundleError, match=why):
        receive("a" * 64, io.BytesIO(stream), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not Path("/etc/cron.d/x").exists()


def test_a_bundle_name_is_a_hash() -> None:
    with pytest.raises(BundleError, match="not a bundle hash"):
        receive("../../etc", io.BytesIO(b""), Path("/nonexistent"))


# ------------------------------------------------------------------------------------ the hello


def test_a_hello_round_trips_and_names_this_code() -> None:
    hello = Hello.here(["b" * 64], {"debian-12": "c" * 64}, "hv1")
    assert Hello.from_bytes(json.dumps(hello.to_json()).encode()) == hello
    assert hello.build == fingerprint() and hello.same_code(Hello.this_machine())
    assert not hello.same_code(Hello("0.0.9", hello.build, "x"))


@pytest.mark.parametrize("data, why", [
    (b"bash: lab: command not found\n", "not a hyperlab hello: bash: lab"),
    (b"[]", "not a JSON object"),
    (json.dumps({"hyperlab": "0.1.0", "build": "zz", "hostname": "h"}).encode(), "no build fingerprint"),
    (json.dumps({"hyperlab": "0.1.0", "build": "0" * 16, "hostname": "h", "bundles": ["../x"]}).encode(), "bundle hashes"),
    (json.dumps({"hyperlab": "0.1.0", "build": "0" * 16, "hostname": "h", "images": {"../x": "0" * 64}}).encode(),
     "image names"),
    (json.dumps({"hyperlab": "0.1.0\x1b[2J", "build": "0" * 16, "hostname": "h"}).encode(), "no hyperlab version"),
    (b"[" * 100_000, "not a hyperlab hello"),
    (b" " * (2 << 20), "a hello of"),
])
def test_a_hosts_hello_is_read_like_any_input(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        Hello.from_bytes(data)


# ------------------------------------------------------------------------------------ ssh


def test_the_ssh_command_line_cannot_be_steered_by_a_target_or_an_argument(tmp_path: Path) -> None:
    ssh = Ssh(SshTarget("hv1.example", "admin", 2222), tmp_path / "ssh_config")
    command = ["lab", "class", "host", "check", "labs/solo/lab.yaml", "--student", "Kim'; rm -rf / #$(id)"]
    argv = ssh.argv(command)
    assert argv[argv.index("-F") + 1] == str(tmp_path / "ssh_config")
    assert "BatchMode=yes" in argv and argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "admin"
    assert argv[-3:-1] == ["--", "hv1.example"]  # nothing after `--` is an ssh option
    assert set(argv[-1]) <= set("exec sh-c'\"$(printf %s|base64-d)") | set(string.ascii_letters + string.digits + "+/=")
    shown = ["printf", "%s\\n", *command[1:]]  # the same arguments, printed one per line by the host's shell
    for shell in ("sh", "bash", "dash"):  # whichever login shell runs the line, POSIX sh gets each argument as itself
        if shutil.which(shell):
            done = subprocess.run([shell, "-c", remote_line(shown)], capture_output=True, text=True)
            assert done.stdout.splitlines() == command[1:], (shell, done.stderr)


# ------------------------------------------------------------------------------------ an image's stream

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")


def golden(store: ImageStore, name: str = "tiny", backing: Path | None = None, backing_format: str = "qcow2",
           options: str | None = None) -> str:
    store.ensure_root()
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    argv += ["-b", str(backing), "-F", backing_format] if backing else []
    argv += ["-o", options] if options else []
    subprocess.run([*argv, str(store.path(name)), "1M"], check=True)
    store.file(f"{name}.vmlinuz").write_bytes(b"kernel")
    store.file(f"{name}.initrd").write_bytes(b"initrd")
    return store.finish(name, os_name="linux", builder="test", kernel=f"{name}.vmlinuz", initrd=f"{name}.initrd").sha256


def stream_of(store: ImageStore, name: str) -> io.BytesIO:
    buffer = io.BytesIO()
    transfer.send(store, name, buffer)
    buffer.seek(0)
    return buffer


@needs_qemu_img
def test_an_image_travels_to_another_store_checked(tmp_path: Path) -> None:
    here, there = ImageStore(tmp_path / "here"), ImageStore(tmp_path / "there")
    sha = golden(here)
    manifest = transfer.receive(there, "tiny", sha, stream_of(here, "tiny"))
    assert manifest.sha256 == sha == sha256_file(there.path("tiny"))
    assert there.file("tiny.vmlinuz").read_bytes() == b"kernel"
    assert not os.access(there.path("tiny"), os.W_OK) or os.geteuid() == 0
    assert oct(there.path("tiny").stat().st_mode & 0o777) == "0o444"
    assert [p.name for p in there.root.iterdir() if p.name.startswith(".") and "receiving" in p.name] == []


@needs_qemu_img
def test_an_image_that_is_not_what_was_announced_is_not_installed(tmp_path: Path) -> None:
    here, there = ImageStore(tmp_path / "here"), ImageStore(tmp_path / "there")
    sha = golden(here)
    with pytest.raises(transfer.TransferError, match="not tiny"):
        transfer.receive(there, "tiny", "f" * 64, stream_of(here, "tiny"))
    with pytest.raises(transfer.TransferError, match="does not begin with its manifest"):
        transfer.receive(there, "debian-12", sha, stream_of(here, "tiny"))
    data = stream_of(here, "tiny").getvalue()
    cut = data[: len(data) // 2]
    with pytest.raises(transfer.TransferError):
        transfer.receive(there, "tiny", sha, io.BytesIO(cut))
    assert not there.exists("tiny")


@needs_qemu_img
@pytest.mark.parametrize("trick", ["backing", "data-file"])
def test_a_disk_that_points_at_another_file_is_refused(tmp_path: Path, trick: str) -> None:
    here, there = ImageStore(tmp_path / "here"), ImageStore(tmp_path / "there")
    secret = tmp_path / "host-secret.raw"
    secret.write_bytes(b"\0" * (1 << 20))
    if trick == "backing":
        sha = golden(here, backing=secret, backing_format="raw")
    else:  # a qcow2 whose data lives in another file of the host (qemu-img create -o data_file=...)
        sha = golden(here, options=f"data_file={secret},data_file_raw=on")
    with pytest.raises(transfer.TransferError, match="names a backing or data file"):
        transfer.receive(there, "tiny", sha, stream_of(here, "tiny"))
    assert not there.exists("tiny")
