"""chapter-2: what the checkers expect, read from lab.yaml and the topology (one source of truth)."""

from __future__ import annotations

from typing import Any

DC = "DC1"
HOSTS = ("SVR1", "SVR2")
SHARE = "smb"
ROUTER = "win2003-1"
PUBLIC_SWITCH = "External"


def domain(lab: Any) -> tuple[str, str]:
    """(fqdn, NetBIOS name) of the lab's domain: ('kosa.vm', 'KOSA')."""
    d = lab.loaded.topology.topology.domain
    return d.fqdn, d.netbios


def switches_of(lab: Any, host: str) -> dict[str, str]:
    """switch name -> kind ('external', 'internal', 'private') that lab.yaml puts on `host`."""
    return {name: s.kind for name, s in lab.loaded.lab.switches.items() if host in s.hosts}


def guest_switches(lab: Any, name: str) -> list[str]:
    return [nic.switch for nic in lab.loaded.lab.guests[name].nics]


def guest_adapter(lab: Any, name: str) -> str:
    """legacy or synthetic: the network adapter kind lab.yaml gives the guest."""
    return str(lab.loaded.lab.guests[name].adapter)


def guest_addresses(lab: Any, name: str) -> dict[str, str]:
    """switch -> 'a.b.c.d/nn' for the guest's NICs that lab.yaml gives an address."""
    return {nic.switch: str(nic.ip) for nic in lab.loaded.lab.guests[name].nics if nic.ip is not None}


def router_public_ip(lab: Any) -> str:
    return guest_addresses(lab, ROUTER)[PUBLIC_SWITCH].split("/")[0]


def prefixes(lab: Any) -> list[str]:
    from ch2_judge import share_prefixes

    fqdn, _ = domain(lab)
    return share_prefixes(DC, fqdn, lab.ip(DC), SHARE)


def guest_names(lab: Any) -> list[str]:
    return sorted(lab.loaded.lab.guests)


def per_host_vms(lab: Any, node: Any) -> dict[str, Any]:
    """Each Hyper-V host's own view of the lab's guests, asked of that host (no double hop)."""
    from ch2_ps import query

    return {host: query(node(host), "vms", Names=guest_names(lab)) for host in HOSTS}
