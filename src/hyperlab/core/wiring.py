"""What each machine of a lab is plugged into: one `Port` per NIC of a topology node or a nested
guest, on a *segment* (a layer-2 network both levels agree on). Pure; used by the rules of
forwards (`hyperlab.core.validate_relations`) and by the diagram (`hyperlab.render.diagram`).

A guest on an external switch sits on the switch's uplink network, as far as addresses go: the
switch bridges it there. A guest on an internal or private switch sits on that switch *of its host*
(SVR1's Internal and SVR2's Internal are two segments with the same name).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from hyperlab.core.model import Lab, Topology

Segment = tuple[str, ...]  # ("net", network) or ("switch", host, switch)


@dataclass(frozen=True)
class Port:
    machine: str
    index: int  # the NIC's position in its machine's `nics:`
    segment: Segment
    via: str  # what the NIC names: the network, or the guest's switch
    ip: IPv4Address | None
    public: bool  # on a network the host side serves (nat, route, bridge), directly or through an external switch
    dhcp: bool  # no address of the lab's own, on a network whose host side serves DHCP
    set_by: str  # "lab" or "student"


def ports(lab: Lab, topo: Topology) -> dict[str, list[Port]]:
    """machine (node or guest) -> its NICs as ports, in `nics:` order. Names that do not resolve
    (an unknown network or switch) give no port; the validation rules report them."""
    found: dict[str, list[Port]] = {}
    for name, node in topo.nodes.items():
        found[name] = []
        for i, nic in enumerate(node.nics):
            net = topo.networks.get(nic.network)
            if net is not None:
                found[name].append(Port(name, i, ("net", nic.network), nic.network, nic.ip, net.mode != "isolated",
                                        nic.ip is None and net.dhcp, nic.set_by))
    for name, guest in lab.guests.items():
        found[name] = []
        for i, gnic in enumerate(guest.nics):
            switch = lab.switches.get(gnic.switch)
            if switch is None:
                continue
            uplink = topo.networks.get(switch.uplink) if switch.kind == "external" and switch.uplink else None
            segment: Segment = ("net", switch.uplink) if uplink is not None and switch.uplink else ("switch", guest.host, gnic.switch)
            ip = gnic.ip.ip if gnic.ip is not None else None
            public = uplink is not None and uplink.mode != "isolated"
            found[name].append(Port(name, i, segment, gnic.switch, ip, public,
                                    ip is None and uplink is not None and uplink.dhcp, "lab"))
    return found


def public_port(machine_ports: list[Port]) -> Port | None:
    """The NIC a router forwards from: its first one on the public side."""
    return next((p for p in machine_ports if p.public), None)


def shared_port(router: list[Port], target: list[Port]) -> tuple[Port, Port] | None:
    """The first pair of NICs (router's, target's) on one segment: where a forward is delivered.
    A segment other than the router's public one is preferred (the inner side)."""
    pairs = [(r, t) for r in router for t in target if r.segment == t.segment]
    inner = [(r, t) for r, t in pairs if not r.public]
    best = inner or pairs
    return best[0] if best else None
