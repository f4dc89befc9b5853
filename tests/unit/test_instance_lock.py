"""The instance lock: a second command on one instance is refused at once, naming the first; the
lock goes with its holder, however that ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hyperlab.host.instance_lock import InstanceBusy, changing, lock_path
from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts, plan

ROOT = Path(__file__).resolve().parents[2]


def a_plan(tmp_path: Path, instance: str = "kim"):  # type: ignore[no-untyped-def]
    return plan(load_lab("chapter-1", ROOT), instance, HostFacts(accel="tcg", images_dir=tmp_path / "images",
                                                                 instances_dir=tmp_path / "instances"))


def test_a_second_holder_is_refused_with_the_first_ones_name(tmp_path: Path) -> None:
    p = a_plan(tmp_path)
    with changing(p, "up"):
        with pytest.raises(InstanceBusy, match=r"^`lab up` \(pid \d+\) is changing chapter-1 instance kim right now; "
                                               r"wait for it to end \(`lab status chapter-1 --instance kim`"):
            with changing(p, "down"):
                pass
    with changing(p, "down"):  # released with the block
        pass
    assert lock_path(p).parent == tmp_path / "instances" / ".locks"


def test_other_instances_are_not_locked(tmp_path: Path) -> None:
    with changing(a_plan(tmp_path, "kim"), "up"), changing(a_plan(tmp_path, "lee"), "up"):
        pass


def test_the_lock_of_a_killed_process_is_free(tmp_path: Path) -> None:
    p = a_plan(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from hyperlab.host.instance_lock import changing; from tests.unit.test_instance_lock import a_plan;"
        "from pathlib import Path\n"
        f"with changing(a_plan(Path({str(tmp_path)!r})), 'solve'):\n print('held', flush=True); time.sleep(60)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(InstanceBusy, match=rf"`lab solve` \(pid {holder.pid}\)"):
            with changing(p, "up"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with changing(p, "up"):  # no stale lock after a kill -9
        pass
