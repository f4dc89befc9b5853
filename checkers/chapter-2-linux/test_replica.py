"""Steps replica and failover: linux01's disk copied from its primary to the other host, again and
again, and the roles swapped in a planned failover (after which replication, reversed, still counts
for the replica step, as a Hyper-V Replica reversed after failover is still a healthy replication). The replica is
/var/lib/libvirt/images/replica/linux01.qcow2 on the replica host, and linux01.stamp beside it holds
the time (date +%s) of the last replication that completed: the stand-in for Hyper-V's
LastReplicationTime. (The replica file's own modification time would not do: an increment of a
guest that wrote nothing changes nothing.)"""

import pytest

from hyperlab.grading import eventually

REPLICA = "/var/lib/libvirt/images/replica/linux01.qcow2"
# how long one replication may take on a slow host: under software emulation each SSH handshake
# alone takes tens of seconds
RUN_TIME = 240
STAMP = "/var/lib/libvirt/images/replica/linux01.stamp"


def replica_age(node, host):
    """Seconds since the last completed replication to `host`, or None when there is none."""
    result = node(host).sh(f"test -f {REPLICA} && cat {STAMP} && date +%s")
    lines = result.stdout.split()
    if not (result.ok and len(lines) == 2 and all(x.isdigit() for x in lines)):
        return None
    return int(lines[1]) - int(lines[0])


def stamp(node, host):
    return node(host).sh(f"cat {STAMP} 2>/dev/null").stdout.strip()


def healthy(node, host):
    check = node(host).sh(f"qemu-img check -q {REPLICA}")
    assert check.ok, f"the replica on {host} is damaged: {check.stdout.strip()[-200:]} {check.stderr.strip()[-200:]}"


def recent(lab, node, host):
    interval = int(lab.variables.get("replication_interval_seconds", 300))
    return eventually(lambda: replica_age(node, host), until=lambda a: a is not None and a <= interval,
                      timeout=min(interval, 300) + RUN_TIME, every=10, what=f"a replica of linux01 on {host} at most {interval}s old")


OTHER = {"SVR1": "SVR2", "SVR2": "SVR1"}


def primary(node):
    """The host where linux01 runs: SVR2 at first, SVR1 after a planned failover."""
    running = [h for h in ("SVR2", "SVR1") if node(h).sh("virsh -q domstate linux01").stdout.strip() == "running"]
    assert running, "linux01 runs on neither SVR1 nor SVR2: replication needs a running primary"
    assert len(running) == 1, "linux01 runs on SVR1 and SVR2 at once: two primaries write two different disks"
    return running[0]


@pytest.mark.step("replica")
def test_linux01_is_replicated_to_the_other_host(lab, node):
    """the host that does not run linux01 holds a healthy replica of it, at most one interval old"""
    target = OTHER[primary(node)]
    recent(lab, node, target)
    healthy(node, target)


@pytest.mark.step("replica")
def test_replication_repeats(lab, node):
    """the replica is refreshed periodically, not copied once"""
    target = OTHER[primary(node)]
    first = eventually(lambda: replica_age(node, target), until=lambda a: a is not None, timeout=60, every=10,
                       what=f"a replica of linux01 on {target}")
    last = stamp(node, target)
    interval = int(lab.variables.get("replication_interval_seconds", 300))
    eventually(lambda: stamp(node, target), until=lambda s: s != last,
               timeout=min(interval, 300) + RUN_TIME, every=10, what=f"a newer replica on {target} than the one {first}s old")


@pytest.mark.step("failover")
def test_linux01_failed_over_to_svr1(node):
    """linux01 runs on SVR1 from its replica and is off on SVR2"""
    on_svr1 = node("SVR1").sh("virsh -q domstate linux01").stdout.strip()
    assert on_svr1 == "running", f"linux01 on SVR1 is {on_svr1 or 'not defined'}, expected running from the replica"
    disk = node("SVR1").sh("virsh -q domblklist linux01 --details | awk '$2 == \"disk\" {print $4}'").stdout.strip()
    assert disk == REPLICA, f"linux01 on SVR1 runs from {disk or 'nothing'}, expected the replica {REPLICA}"
    on_svr2 = node("SVR2").sh("virsh -q domstate linux01").stdout.strip()
    assert on_svr2 != "running", "linux01 still runs on SVR2: a planned failover shuts the primary down first"


@pytest.mark.step("failover")
def test_replication_is_reversed(lab, node):
    """SVR2 now receives replicas of linux01 from SVR1"""
    recent(lab, node, "SVR2")
    healthy(node, "SVR2")
