"""Fixtures for tests against the real libvirtd on qemu:///system."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from hyperlab.core.plan import HostFacts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def conn() -> Iterator[object]:
    from hyperlab.host.conn import connect

    connection = connect()  # fails loudly (HostProblem) when libvirtd is down: run scripts/setup-host.sh
    yield connection
    connection.close()


# chapter-1's end-to-end test runs on the other xdist worker (tests/conftest.py): its instances'
# objects appear and vanish while any test of this worker runs, so inventories leave them out
CHAPTER1_INSTANCES = ("c1ci", "c1fresh")
ALONGSIDE = tuple(f"hl.chapter-1.{name}" for name in (*CHAPTER1_INSTANCES, "template"))  # template: `lab prepare`


def inventory(conn: object, *, alongside: bool = False) -> dict[str, set[str]]:
    """Everything libvirt knows by name: what `lab down` must restore exactly. Without the objects
    of the tests that run alongside on the other worker, unless `alongside` (for those tests)."""
    pools = {p.name(): p for p in conn.listAllStoragePools()}  # type: ignore[attr-defined]
    volumes = set()
    for name, pool in pools.items():
        if pool.isActive():
            try:
                pool.refresh(0)
                volumes |= {f"{name}/{v}" for v in pool.listVolumes()}
            except libvirt.libvirtError:
                if alongside or not name.startswith(ALONGSIDE):
                    raise  # only the other worker's pools may vanish while they are listed
    found = {
        "domains": {d.name() for d in conn.listAllDomains()},  # type: ignore[attr-defined]
        "networks": {n.name() for n in conn.listAllNetworks()},  # type: ignore[attr-defined]
        "pools": set(pools),
        "volumes": volumes,
    }
    if alongside:
        return found
    return {kind: {n for n in names if not n.startswith(ALONGSIDE)} for kind, names in found.items()}


@pytest.fixture
def fake_images(tmp_path: Path) -> HostFacts:
    """Empty golden images (never booted) and an instances folder, both under tmp_path."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("debian-12", "tiny"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images / f"{name}.qcow2"), "256M"], check=True)
        (images / f"{name}.vmlinuz").write_bytes(b"")
        (images / f"{name}.initrd").write_bytes(b"")
    return HostFacts(accel="tcg", images_dir=images, instances_dir=tmp_path / "instances")


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of `lab` commands in the tests: software emulation, a grading key of their own."""
    key = tmp_path_factory.mktemp("key") / "grading.key"
    return {**os.environ, "HYPERLAB_ACCEL": os.environ.get("HYPERLAB_ACCEL", "tcg"), "HYPERLAB_GRADING_KEY": str(key)}


def run_lab(env: dict[str, str], *args: str, check: bool = True, timeout: float = 1800,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`lab ARGS` in its own process from the checkout; a non-zero exit fails with its output."""
    result = subprocess.run([sys.executable, "-m", "hyperlab", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def up_at_once(env: dict[str, str], lab: str, instances: tuple[str, ...], *options: str,
               timeout: float = 3600) -> dict[str, str]:
    """`lab up` of several instances of one lab at once. Every one has ended (or been killed) before
    this fails, so that the caller's `lab down` never races an `up` still running."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "hyperlab", "up", lab, "--instance", name, *options], cwd=ROOT,
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in instances}
    outputs = {}
    try:
        for name, proc in procs.items():
            outputs[name] = proc.communicate(timeout=timeout)[0]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    failed = [f"lab up --instance {name} exited {proc.returncode}\n{outputs[name]}"
              for name, proc in procs.items() if proc.returncode != 0]
    assert not failed, "\n".join(failed)
    return outputs
