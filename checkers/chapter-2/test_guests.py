"""Steps guests and nat-addressing: the nested guests on the Hyper-V hosts, and the router's
addresses as far as they can be seen from outside a Windows Server 2003 guest.

Windows Server 2003 has no PowerShell Direct, no guest agent and no WinRM, so nothing runs inside
the inner guests: facts come from the Hyper-V host that runs them (Get-VM, ARP) and from the
network. NOT run against Windows: see docs/guide/windows-unproven.en.md."""

import pytest

from ch2_facts import HOSTS, PUBLIC_SWITCH, ROUTER, guest_adapter, guest_addresses, guest_switches, per_host_vms, prefixes, router_public_ip
from ch2_judge import judge_guest, judge_public_leg, judge_reported_addresses, where_is
from ch2_ps import query
from hyperlab.probes import Outcome

ON_SHARE = {"win2003-3"}  # the seed boots win2003-3 from the disk DC1 shares


@pytest.mark.step("guests")
def test_guests_and_their_switches(lab, node):
    """win2003-1, -2, -3 (and the replica VM) exist, generation 1, NICs of the right kind on the right switches"""
    vms = per_host_vms(lab, node)
    problems = [p for name in sorted(lab.loaded.lab.guests)
                for p in judge_guest(vms, name, guest_switches(lab, name), prefixes(lab) if name in ON_SHARE else None,
                                     guest_adapter(lab, name))]
    assert not problems, "; ".join(problems)


def router_vm(lab, node):
    vms = per_host_vms(lab, node)
    found = where_is(vms, ROUTER)
    assert found, f"no VM named {ROUTER} on {' or '.join(HOSTS)}"
    host, vm = next(iter(found.items()))
    return host, vm


@pytest.mark.step("nat-addressing")
def test_public_address_is_on_the_external_nic(lab, node):
    """192.168.1.111 is answered (ARP) by win2003-1's NIC on External"""
    host, vm = router_vm(lab, node)
    address = router_public_ip(lab)
    problems = judge_public_leg(vm, query(node(host), "neighbor", Address=address), PUBLIC_SWITCH, address)
    assert not problems, "; ".join(problems)


@pytest.mark.step("nat-addressing", weight=0.5)
def test_public_address_answers_from_outside(lab, probe):
    """something answers TCP on 192.168.1.111 from the public side (open or refused, not silent)"""
    answer = probe.tcp(router_public_ip(lab), 445, timeout=5)
    assert answer.outcome in (Outcome.OK, Outcome.REFUSED), f"no host at {router_public_ip(lab)}: {answer.verdict}"


@pytest.mark.step("nat-addressing")
def test_addresses_reported_by_the_guests(lab, node):
    """the inner guests that report addresses to Hyper-V (integration services) report the lab's ones"""
    vms = per_host_vms(lab, node)
    problems = []
    for name in ("win2003-1", "win2003-2", "win2003-3"):
        found = where_is(vms, name)
        assert found, f"no VM named {name}"
        # None: the guest reports nothing (a Windows Server 2003 image without integration services).
        # Hyper-V cannot read its addresses then; the port-forwards step proves the inner legs end to
        # end. Not an ERROR: that would block every step after this one for a fact of the image.
        problems += judge_reported_addresses(next(iter(found.values())), guest_addresses(lab, name)) or []
    assert not problems, "; ".join(problems)
