"""`lab up / exec / reset / status / down` with real guests under the real libvirtd.

The lab (tests/data/labs/routed) has three Debian guests on two isolated networks behind a
router. Under software emulation each boot takes 20-40 s, so the tests share deployments where
the property under test allows it, and run in the order written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, inventory

pytestmark = pytest.mark.vm
LAB = "tests/data/labs/routed"
ENV = {**os.environ, "HYPERLAB_ACCEL": os.environ.get("HYPERLAB_ACCEL", "tcg")}


def lab(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "hyperlab", *args], cwd=ROOT, env=ENV, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def domain_ids(conn: object, instance: str) -> dict[str, int]:
    return {d.name(): d.ID() for d in conn.listAllDomains() if d.name().startswith(f"hl.routed.{instance}.")}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def baseline(conn: object) -> dict[str, set[str]]:
    return inventory(conn)


@pytest.fixture(scope="module")
def deployed(conn: object, baseline: dict[str, set[str]]) -> Iterator[str]:
    lab("up", LAB, "--instance", "one")
    yield "one"
    lab("down", LAB, "--instance", "one", check=False)


def test_up_brings_every_node_to_ready_and_routes_between_networks(deployed: str) -> None:
    status = json.loads(lab("status", LAB, "--instance", deployed, "--json").stdout)
    assert [(n["name"], n["state"], n["agent"], n["ready"]) for n in status["nodes"]] == [
        ("R1", "running", True, True), ("A", "running", True, True), ("B", "running", True, True)]
    ping = lab("exec", LAB, "A", "--instance", deployed, "--", "ping", "-c", "2", "-W", "3", "10.2.0.10", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # and the route really goes through R1: B sees A's own address (no NAT on the router)
    assert "10.2.0.10" in ping.stdout


def boot_id(instance: str, node: str) -> str:
    """The kernel's id of the guest's current boot: a new one at every boot, kept by a checkpoint."""
    return lab("exec", LAB, node, "--instance", instance, "--", "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()


def first_boot_log(instance: str) -> str:
    return lab("exec", LAB, "A", "--instance", instance, "--", "cat", "/root/first-boot.log").stdout


def test_a_nodes_first_boot_script_ran_once(deployed: str) -> None:
    assert first_boot_log(deployed) == "first boot of a\n"


def test_exec_returns_the_commands_exit_code_and_output(deployed: str) -> None:
    result = lab("exec", LAB, "B", "--instance", deployed, "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")


def test_the_agent_channel_moves_large_output_and_files_and_enforces_timeouts(conn: object, deployed: str) -> None:
    from hyperlab.guest.agent import agent_channel
    from hyperlab.core.load import load_lab
    from hyperlab.core.plan import plan

    channel = agent_channel(conn, plan(load_lab(LAB, ROOT), deployed).node("B"))  # type: ignore[arg-type]
    # 20 MB: twice libvirt's 10 MiB cap on one agent reply, which once broke the domain's agent for good
    big = channel.run("head -c 15000000 /dev/urandom | base64 -w 0", timeout=300)
    assert big.ok and len(big.stdout) == 20000000 and not big.truncated
    assert channel.ping()
    payload = os.urandom(3 << 20)
    channel.write_file("/root/blob", payload)
    assert channel.read_file("/root/blob") == payload
    assert channel.run(["sha256sum", "/root/blob"]).stdout.split()[0] == __import__("hashlib").sha256(payload).hexdigest()
    slow = channel.run(["sleep", "300"], timeout=3)
    assert slow.timed_out and slow.duration < 20
    assert channel.run("pgrep -x sleep").exit_code == 1  # the command was killed, not left running


def test_up_again_creates_changes_and_restarts_nothing(conn: object, deployed: str) -> None:
    before = domain_ids(conn, deployed)
    result = lab("up", LAB, "--instance", deployed)
    assert "0 object(s) created or started" in result.stderr
    assert domain_ids(conn, deployed) == before  # same running processes: nothing restarted
    assert first_boot_log(deployed) == "first boot of a\n"  # and no script ran twice


def test_reset_puts_a_node_back_to_its_start(conn: object, deployed: str) -> None:
    """From the `start` checkpoint `lab up` kept: the guest runs on from that moment, no boot."""
    lab("exec", LAB, "A", "--instance", deployed, "--", "sh", "-c", "echo student-work > /root/work.txt")
    assert lab("exec", LAB, "A", "--instance", deployed, "--", "cat", "/root/work.txt").stdout == "student-work\n"
    booted = boot_id(deployed, "A")  # the boot of `lab up`, the one the checkpoint was taken in
    reset = lab("reset", LAB, "A", "--instance", deployed)
    assert "A: restored checkpoint start" in reset.stderr, reset.stderr
    assert boot_id(deployed, "A") == booted  # the checkpoint's memory: the same boot, not a new one
    gone = lab("exec", LAB, "A", "--instance", deployed, "--", "test", "-e", "/root/work.txt", check=False)
    assert gone.returncode == 1
    assert first_boot_log(deployed) == "first boot of a\n"  # the start state as it was: first boot once
    assert lab("exec", LAB, "A", "--instance", deployed, "--", "ping", "-c", "1", "-W", "3", "10.2.0.10", check=False).returncode == 0


def test_reset_clean_boots_a_new_overlay_and_keeps_a_new_start(conn: object, deployed: str) -> None:
    lab("exec", LAB, "A", "--instance", deployed, "--", "sh", "-c", "echo student-work > /root/work.txt")
    ids, booted = domain_ids(conn, deployed), boot_id(deployed, "A")
    reset = lab("reset", LAB, "A", "--instance", deployed, "--clean")
    assert "restored checkpoint" not in reset.stderr and "A: checkpoint start saved" in reset.stderr, reset.stderr
    assert boot_id(deployed, "A") != booted  # booted anew
    after = domain_ids(conn, deployed)
    assert {k: v for k, v in after.items() if not k.endswith(".A")} == {k: v for k, v in ids.items() if not k.endswith(".A")}
    assert lab("exec", LAB, "A", "--instance", deployed, "--", "test", "-e", "/root/work.txt", check=False).returncode == 1
    assert first_boot_log(deployed) == "first boot of a\n"  # a new node: its first boot ran again, once
    listed = json.loads(lab("checkpoint", "list", LAB, "--instance", deployed, "--json").stdout)
    assert [(c["name"], sorted(c["nodes"])) for c in listed["checkpoints"]] == [("start", ["A", "B", "R1"])]


def test_a_saved_checkpoint_brings_the_whole_instance_back_with_its_clock_set(deployed: str) -> None:
    def on(node: str, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return lab("exec", LAB, node, "--instance", deployed, "--", *command, check=check)

    on("B", "sh", "-c", "echo kept > /root/kept.txt")
    lab("checkpoint", "save", LAB, "before-change", "--instance", deployed)
    on("A", "sh", "-c", "echo later > /root/later.txt")
    on("B", "rm", "/root/kept.txt")
    time.sleep(30)  # the checkpoint's clock falls behind the host's by this much
    restored = lab("reset", LAB, "--instance", deployed, "--to", "before-change")
    assert all(f"{n}: restored checkpoint before-change" in restored.stderr for n in ("R1", "A", "B")), restored.stderr
    assert on("A", "test", "-e", "/root/later.txt", check=False).returncode == 1
    assert on("B", "cat", "/root/kept.txt").stdout == "kept\n"
    for node in ("R1", "A", "B"):
        guest = int(on(node, "date", "+%s").stdout)
        assert abs(guest - time.time()) < 10, f"{node}'s clock is {time.time() - guest:.0f} s behind after the restore"
    assert on("A", "ping", "-c", "1", "-W", "3", "10.2.0.10", check=False).returncode == 0  # the cut was consistent
    lab("checkpoint", "delete", LAB, "before-change", "--instance", deployed)
    listed = json.loads(lab("checkpoint", "list", LAB, "--instance", deployed, "--json").stdout)
    assert [c["name"] for c in listed["checkpoints"]] == ["start"]
    refused = lab("reset", LAB, "--instance", deployed, "--to", "before-change", check=False)
    assert refused.returncode == 2 and "no checkpoint and no step" in refused.stderr


def test_two_instances_run_side_by_side_without_colliding(conn: object, deployed: str) -> None:
    try:
        lab("up", LAB, "--instance", "two")
        for instance in (deployed, "two"):
            assert lab("exec", LAB, "A", "--instance", instance, "--", "ping", "-c", "1", "-W", "3", "10.2.0.10",
                       check=False).returncode == 0
        # each B is its instance's own: a file written in one is not in the other
        lab("exec", LAB, "B", "--instance", "two", "--", "sh", "-c", "echo two > /root/who")
        assert lab("exec", LAB, "B", "--instance", deployed, "--", "test", "-e", "/root/who", check=False).returncode == 1
    finally:
        lab("down", LAB, "--instance", "two", check=False)


def test_a_foreign_domain_named_like_a_node_is_refused_and_untouched(conn: object) -> None:
    name = "hl.routed.foreign.B"
    xml = f"<domain type='qemu'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os></domain>"
    foreign = conn.defineXML(xml)  # type: ignore[attr-defined]
    try:
        before = inventory(conn)
        result = lab("up", LAB, "--instance", "foreign", check=False)
        assert result.returncode == 2
        assert f"refused: domain '{name}' already exists and was not made by hyperlab" in result.stderr
        after = inventory(conn)
        assert after["domains"] == before["domains"] and after["networks"] == before["networks"]
        assert foreign.XMLDesc(0).count("hyperlab") == 0
    finally:
        foreign.undefine()
        lab("down", LAB, "--instance", "foreign", check=False)


def test_up_killed_midway_converges_when_run_again_and_leaks_nothing(conn: object, baseline: dict[str, set[str]]) -> None:
    process = subprocess.Popen([sys.executable, "-m", "hyperlab", "up", LAB, "--instance", "killed"], cwd=ROOT,
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(d.isActive() for d in
                                                    (conn.lookupByName(n) for n in domain_ids(conn, "killed"))):  # type: ignore[attr-defined]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # mid-way: domains defined and booting, start state not done
    process.wait()
    assert domain_ids(conn, "killed"), "lab up was killed before it defined anything: the test proves nothing"
    lab("up", LAB, "--instance", "killed")
    status = json.loads(lab("status", LAB, "--instance", "killed", "--json").stdout)
    assert all(n["ready"] for n in status["nodes"])
    lab("down", LAB, "--instance", "killed")
    remaining = inventory(conn)
    assert not {n for names in remaining.values() for n in names if ".killed" in n}
    netns = json.loads(lab("plan", LAB, "--instance", "killed", "--json").stdout)["host_side"]["netns"]
    assert not (Path("/run/netns") / netns).exists()


def test_down_restores_the_libvirt_inventory(conn: object, baseline: dict[str, set[str]], deployed: str) -> None:
    lab("down", LAB, "--instance", deployed)
    assert inventory(conn) == baseline
    assert lab("status", LAB, "--instance", deployed, "--json", check=False).returncode == 1
