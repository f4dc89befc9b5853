"""Accelerator detection for real: QEMU boots the tiny image under KVM and under TCG.

On this kind of machine (../shared/FACTS.md) /dev/kvm exists and answers the API, but a guest
under KVM hangs right after the kernel's real-mode setup. Detection must find that by booting,
time out, kill the probe and say "tcg" with the "hung" reason; and the same guest under TCG must
print its marker, which proves the check can pass.

The tiny image comes from $HYPERLAB_IMAGES (or the default store) when built; otherwise it is built
here (~10 s) into a fresh store under /var/tmp (QEMU must traverse to it; pytest's tmp is 0700),
exported as HYPERLAB_IMAGES for the module, and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from hyperlab.host import accel
from hyperlab.host.accel import (
    KVM_TIMEOUT,
    PROBE_TAG,
    AccelUnavailable,
    ProbeResult,
    detect_accel,
    find_test_guest,
    host_cache_key,
    leftover_probes,
    load_cached,
    probe_tcg,
    resolve_accel,
    run_probe,
)
from hyperlab.images.store import ENV_ROOT, ImageStore

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def store() -> Iterator[ImageStore]:
    existing = ImageStore()
    if existing.exists("tiny"):
        yield existing
        return
    if os.geteuid() != 0 or shutil.which("mmdebstrap") is None:
        pytest.skip("no tiny image and cannot build one (needs root and mmdebstrap: bash scripts/setup-host.sh)")
    from hyperlab.images.tiny import build_tiny

    root = Path(tempfile.mkdtemp(prefix="hlacc-store-", dir="/var/tmp"))
    saved = os.environ.get(ENV_ROOT)
    os.environ[ENV_ROOT] = str(root)
    try:
        built = ImageStore()
        build_tiny(built)
        yield built
    finally:
        if saved is None:
            os.environ.pop(ENV_ROOT, None)
        else:
            os.environ[ENV_ROOT] = saved
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cache_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hlacc-cache") / "accel.json"


class KvmWatcher:
    """Watches for the probe's QEMU while detection runs; records the KVM file descriptors it holds."""

    def __init__(self) -> None:
        self.fds: set[str] = set()
        self.cmdline = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in leftover_probes(PROBE_TAG):
                try:
                    self.cmdline = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
                    for fd in Path(f"/proc/{pid}/fd").iterdir():
                        self.fds.add(os.readlink(fd))
                except OSError:
                    pass
            time.sleep(0.2)


def test_kvm_hangs_here_so_detection_times_out_and_says_tcg(
        store: ImageStore, cache_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[ProbeResult] = []
    real_run_probe = accel.run_probe
    monkeypatch.setattr(accel, "run_probe", lambda *a, **kw: probes.append(real_run_probe(*a, **kw)) or probes[-1])
    assert leftover_probes() == [], "a probe QEMU from an earlier run is still there"

    start = time.monotonic()
    with KvmWatcher() as watcher:
        report = detect_accel(None, cache_path=cache_path)  # the store comes from HYPERLAB_IMAGES / the default
    elapsed = time.monotonic() - start

    assert report.accel == "tcg"
    assert report.status == "hung"
    assert report.reason == (f"/dev/kvm exists but a test guest hung under KVM (no kernel output after "
                             f"{KVM_TIMEOUT:g} s): using software emulation")
    # it really ran QEMU under KVM: the process held a KVM VM and vCPU, and the firmware ran ...
    assert "-accel kvm" in watcher.cmdline
    assert "anon_inode:kvm-vm" in watcher.fds and "anon_inode:kvm-vcpu:0" in watcher.fds
    [probe] = probes
    assert "Booting from ROM" in probe.output  # SeaBIOS ran under KVM and handed over to the kernel ...
    assert not probe.kernel_started  # ... which never printed a line
    # ... and it waited out the whole timeout, then killed QEMU, leaving nothing behind
    assert probe.timed_out and probe.seconds >= KVM_TIMEOUT
    assert KVM_TIMEOUT <= elapsed < KVM_TIMEOUT + 10
    assert probe.returncode == -signal.SIGKILL
    assert not Path(f"/proc/{probe.pid}").exists()
    assert leftover_probes() == []
    # the verdict is cached for this kernel, QEMU and /dev/kvm; the next detection costs nothing
    cached = load_cached(cache_path, host_cache_key())
    assert cached is not None and cached.status == "hung"
    start = time.monotonic()
    again = detect_accel(None, cache_path=cache_path)
    assert time.monotonic() - start < 2
    assert again.cached and again.accel == "tcg" and again.why == report.why
    assert len(probes) == 1


def test_the_same_guest_reaches_its_marker_under_tcg(store: ImageStore) -> None:
    guest = find_test_guest(store)
    assert guest is not None and guest.name == "tiny" and guest.marker == "hyperlab-tiny: ready boot="
    probe = probe_tcg(store)
    assert probe.reached, probe.output[-2000:]
    assert not probe.timed_out
    assert any(line.startswith("hyperlab-tiny: ready boot=1") for line in probe.output.splitlines())
    assert probe.kernel_started
    assert probe.seconds < 60
    assert probe.returncode == -signal.SIGKILL  # still running after the marker: killed by us
    assert not Path(f"/proc/{probe.pid}").exists()
    assert leftover_probes() == []


def test_the_timeout_is_hard_whatever_its_value(store: ImageStore) -> None:
    guest = find_test_guest(store)
    assert guest is not None
    start = time.monotonic()
    probe = run_probe("kvm", guest, 3.0)
    elapsed = time.monotonic() - start
    assert probe.timed_out and not probe.reached
    assert 3.0 <= probe.seconds and elapsed < 6
    assert not Path(f"/proc/{probe.pid}").exists() and leftover_probes() == []


def test_the_cli_choices_on_this_host(store: ImageStore, cache_path: Path) -> None:
    def detect(s: ImageStore | None) -> accel.AccelReport:
        return detect_accel(s, cache_path=cache_path)  # cached by the first test: no second 15 s wait

    with pytest.raises(AccelUnavailable) as caught:
        resolve_accel("kvm", store, env={}, detect=detect)
    assert str(caught.value).startswith("--accel kvm: KVM does not work on this host: /dev/kvm exists but a test "
                                        "guest hung under KVM")
    assert str(caught.value).endswith("; use --accel tcg")
    assert resolve_accel("auto", store, env={}, detect=detect).accel == "tcg"
    assert resolve_accel("tcg", store, env={}, detect=detect).accel == "tcg"
    assert resolve_accel("auto", store, env={"HYPERLAB_ACCEL": "tcg"}, detect=detect).source == "HYPERLAB_ACCEL=tcg"
