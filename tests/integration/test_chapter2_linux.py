"""chapter-2-linux on real guests: the README's lab, deployed, checked, solved and checked again.

Six Debian guests under software emulation (about eight minutes to deploy here), with four nested
tickers on the two hypervisors. The checker self-test covers all twelve steps: the domain join, the
networking half of seed 004 (router, NAT, Telnet, RDP on 35000, port forwards), and the
virtualization half (migration settings, three kinds of live migration, replica, failover), with the
replication interval shortened to 60 s by a lab variable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlab.deploy import host_plan
from hyperlab.grading.selftest import prove_checkers
from hyperlab.load import load_lab
from tests.integration.conftest import inventory, run_lab

pytestmark = pytest.mark.vm
LAB = "labs/chapter-2-linux/lab.yaml"
INSTANCE = "c2ci"
INTERVAL = 60


@pytest.fixture(scope="module")
def deployed(conn: object, lab_env: dict[str, str]) -> Iterator[dict[str, str]]:
    try:
        run_lab(lab_env, "up", LAB, "--instance", INSTANCE, "--var", f"replication_interval_seconds={INTERVAL}")
        yield lab_env
    finally:
        run_lab(lab_env, "down", LAB, "--instance", INSTANCE, check=False)
        left = {kind: {n for n in names if f".{INSTANCE}." in n or n.endswith(f".{INSTANCE}")}
                for kind, names in inventory(conn).items()}
        assert left == {kind: set() for kind in left}, left


def test_checkers_fail_fresh_and_pass_after_the_solutions(conn: object, deployed: dict[str, str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERLAB_GRADING_KEY", deployed["HYPERLAB_GRADING_KEY"])
    loaded = load_lab(LAB)
    before, after = prove_checkers(conn, loaded, host_plan(loaded, INSTANCE), tmp_path)  # type: ignore[arg-type]
    statuses = {s["id"]: s["status"] for s in before["steps"]}
    assert statuses["nat"] == statuses["port-forwards"] == statuses["shared-nothing"] == statuses["failover"] == "BLOCKED"
    assert statuses["router-addressing"] == statuses["domain-join"] == "FAIL"
    assert after["score"] == after["max"] == 100
