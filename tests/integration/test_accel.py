"""Accelerator detection for real: QEMU boots the tiny image under this host's KVM and under TCG.

What KVM does here depends on the host (../shared/FACTS.md: on some machines of this kind a guest
hangs, on others QEMU aborts at once; elsewhere it works). These tests assert what the framework
promises on any host: a KVM that works is used; one that does not is detected by really booting,
said in one line with the reason, the verdict cached, and software emulation used, which really
boots the same guest. Each way of failing is played by a controlled stand-in in
tests/unit/test_accel_standins.py.

The tiny image comes from $HYPERLAB_IMAGES (or the default store) when built; otherwise it is built
here (~10 s) into a fresh store under /var/tmp (QEMU must traverse to it; pytest's tmp is 0700),
exported as HYPERLAB_IMAGES for the module, and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlab.host import accel
from hyperlab.host.accel import KVM_TIMEOUT, AccelUnavailable, ProbeResult, host_cache_key, load_cached, resolve_accel
from hyperlab.host.accel_probe import leftover_probes
from hyperlab.images.test_guest import detect, find_test_guest, probe_tcg
from hyperlab.host.facts import ENV_ROOT
from hyperlab.images.store import ImageStore

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


UNUSABLE = ("hung", "failed", "missing", "no-access")  # what detection may find about a KVM it cannot use


def test_this_hosts_kvm_is_used_only_if_it_really_boots_a_guest(
        store: ImageStore, cache_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[ProbeResult] = []
    real_run_probe = accel.run_probe
    monkeypatch.setattr(accel, "run_probe", lambda *a, **kw: probes.append(real_run_probe(*a, **kw)) or probes[-1])
    assert leftover_probes() == [], "a probe QEMU from an earlier run is still there"

    report = detect(store, cache_path=cache_path)

    assert "\n" not in report.reason  # one line, whatever KVM did
    if report.accel == "kvm":
        assert report.status == "works" and report.reason.startswith("KVM works: a test guest reached userspace in ")
        assert probes[0].accel == "kvm" and probes[0].reached
    else:
        assert report.status in UNUSABLE, report
        assert report.reason.endswith(": using software emulation"), report.reason
        if report.status in ("hung", "failed"):  # /dev/kvm was there: a guest really ran under KVM
            assert report.tested and probes and probes[0].accel == "kvm" and not probes[0].reached
            assert probes[0].timed_out == (report.status == "hung")  # a hang waited out the whole timeout
            assert not probes[0].timed_out or probes[0].seconds >= KVM_TIMEOUT
    # every probe QEMU was killed and reaped, whatever happened
    for probe in probes:
        assert not Path(f"/proc/{probe.pid}").exists()
    assert leftover_probes() == []
    if report.tested:
        # the verdict is cached for this kernel, QEMU and /dev/kvm; the next detection costs nothing
        cached = load_cached(cache_path, host_cache_key())
        assert cached is not None and cached.status == report.status
        count = len(probes)
        again = detect(store, cache_path=cache_path)
        assert again.cached and again.accel == report.accel and again.why == report.why
        assert len(probes) == count


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


def test_the_cli_choices_on_this_host(store: ImageStore, cache_path: Path) -> None:
    def detected() -> accel.AccelReport:
        return detect(store, cache_path=cache_path)  # cached by the first test: no second wait

    report = detected()
    if report.kvm_works:
        assert resolve_accel("kvm", env={}, detect=detected).accel == "kvm"
        assert resolve_accel("auto", env={}, detect=detected).accel == "kvm"
    else:
        with pytest.raises(AccelUnavailable) as caught:
            resolve_accel("kvm", env={}, detect=detected)
        assert str(caught.value) == f"--accel kvm: KVM does not work on this host: {report.why}; use --accel tcg"
        assert resolve_accel("auto", env={}, detect=detected).accel == "tcg"
    assert resolve_accel("tcg", env={}, detect=detected).accel == "tcg"
    assert resolve_accel("auto", env={"HYPERLAB_ACCEL": "tcg"}, detect=detected).source == "HYPERLAB_ACCEL=tcg"
