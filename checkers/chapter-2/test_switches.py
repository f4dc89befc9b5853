"""Step switches: External, Internal, Private and Internal2 on both Hyper-V hosts, each read on
its own host. NOT run against Windows: see docs/guide/windows-unproven.en.md."""

import pytest

from ch2_facts import HOSTS, switches_of
from ch2_judge import judge_switches
from ch2_ps import query


@pytest.mark.step("switches")
def test_switches_on_both_hosts(lab, node):
    """SVR1 and SVR2 each have External (bound, with the host's address), Internal, Private and Internal2"""
    problems = [p for host in HOSTS
                for p in judge_switches(query(node(host), "switches"), host, switches_of(lab, host), lab.ip(host))]
    assert not problems, "; ".join(problems)
