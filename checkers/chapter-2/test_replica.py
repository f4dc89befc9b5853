"""Steps replica-server, replication and planned-failover: Hyper-V Replica between SVR2 and SVR1.

Each host reports its own side (Get-VMReplicationServer, Get-VMReplication); the replica
listener is also probed from the public side. NOT run against Windows: see
docs/guide/windows-unproven.en.md."""

import pytest

from ch2_facts import HOSTS
from ch2_judge import judge_replica_server, judge_replication
from ch2_ps import query
from hyperlab.grading import eventually

HEALTH_TIMEOUT = 180  # seconds: initial replication of a small VM, then the first delta


@pytest.mark.step("replica-server")
def test_replica_server_settings(node):
    """SVR1 and SVR2 are Replica servers (Kerberos over HTTP, any authenticated server), rule enabled"""
    problems = [p for host in HOSTS for p in judge_replica_server(query(node(host), "replica-server"), host)]
    assert not problems, "; ".join(problems)


@pytest.mark.step("replica-server", weight=0.5)
def test_replica_listener_reachable(lab, node, probe):
    """each host's replica listener port answers from the public side (listener + firewall rule)"""
    for host in HOSTS:
        port = query(node(host), "replica-server")["KerberosAuthenticationPort"]
        answer = probe.tcp(lab.ip(host), port, timeout=5)
        assert answer.ok, f"{host}'s replica listener: {answer.verdict}"


def replication_problems(lab, node, primary: str, replica: str, running: bool) -> list[str]:
    vm = str(lab.variables["replica_vm"])
    frequency = int(lab.variables["replication_frequency_seconds"])
    return judge_replication(query(node(primary), "replication", VMName=vm), query(node(replica), "replication", VMName=vm),
                             vm, primary, replica, frequency, running=running)


@pytest.mark.step("replication")
def test_replication_healthy(lab, node):
    """the replica VM replicates from its primary host to the replica server every 5 minutes, Normal"""
    primary, replica = str(lab.variables["replica_primary"]), str(lab.variables["replica_server"])
    problems = eventually(lambda: replication_problems(lab, node, primary, replica, running=False), lambda p: not p,
                          timeout=HEALTH_TIMEOUT, every=15, what="healthy replication")
    assert not problems


@pytest.mark.step("planned-failover")
def test_failed_over_and_reversed(lab, node):
    """after the planned failover the VM runs on the replica server and replicates back, Normal"""
    primary, replica = str(lab.variables["replica_server"]), str(lab.variables["replica_primary"])
    problems = eventually(lambda: replication_problems(lab, node, primary, replica, running=True), lambda p: not p,
                          timeout=HEALTH_TIMEOUT, every=15, what="reverse replication")
    assert not problems
