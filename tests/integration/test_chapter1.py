"""chapter-1 end to end: `lab up`, every step FAIL or BLOCKED, `lab solve`, every step PASS, `lab down`.

HV1 is a Debian guest with libvirt; vm1 is a guest of HV1, booted with software emulation inside
software emulation here, which takes minutes. The whole test takes a quarter of an hour or more on a
2-core host under TCG.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, inventory

pytestmark = pytest.mark.vm
LAB = "labs/chapter-1/lab.yaml"
INSTANCE = "c1ci"
ENV = {**os.environ, "HYPERLAB_ACCEL": os.environ.get("HYPERLAB_ACCEL", "tcg")}


def lab(*args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "hyperlab", *args], cwd=ROOT, env=ENV, capture_output=True, check=False,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def ours(names: dict[str, set[str]]) -> set[str]:
    return {n for group in names.values() for n in group if f"chapter-1.{INSTANCE}" in n}


def test_chapter1_checkers_fail_fresh_and_pass_after_the_solutions(conn: object, tmp_path: Path) -> None:
    from hyperlab.deploy import host_plan
    from hyperlab.grading.selftest import prove_checkers
    from hyperlab.load import load_lab

    assert not ours(inventory(conn)), f"instance {INSTANCE} is left over from an earlier run; `lab down` it first"
    started = time.monotonic()
    try:
        lab("up", LAB, "--instance", INSTANCE)
        up = time.monotonic()
        # the framework put the tiny image on HV1, once, and readable by libvirt's QEMU
        listing = lab("exec", LAB, "HV1", "--instance", INSTANCE, "--", "stat", "-c", "%n %a %U",
                      "/var/lib/libvirt/images/tiny.qcow2", "/var/lib/libvirt/images/tiny.vmlinuz",
                      "/var/lib/libvirt/images/tiny.initrd", "/var/lib/libvirt/images/tiny.cmdline").stdout.splitlines()
        assert listing == ["/var/lib/libvirt/images/tiny.qcow2 644 libvirt-qemu",
                           "/var/lib/libvirt/images/tiny.vmlinuz 644 root",
                           "/var/lib/libvirt/images/tiny.initrd 644 root",
                           "/var/lib/libvirt/images/tiny.cmdline 644 root"]
        loaded = load_lab(LAB, ROOT)
        before, after = prove_checkers(conn, loaded, host_plan(loaded, INSTANCE), tmp_path,  # type: ignore[arg-type]
                                       key=str(tmp_path / "grading.key"))
        assert after["score"] == after["max"] == 100
        print(f"\nchapter-1: lab up {up - started:.0f}s, checks+solve+checks {time.monotonic() - up:.0f}s; "
              f"before: {[(s['id'], s['status']) for s in before['steps']]}")
    finally:
        down = lab("down", LAB, "--instance", INSTANCE, check=False)
        print(f"chapter-1: total {time.monotonic() - started:.0f}s")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not ours(inventory(conn)), f"left in libvirt after lab down: {sorted(ours(inventory(conn)))}"
