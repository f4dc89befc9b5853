"""Steps router-addressing and nat: the router's three legs, the inner hosts, and masquerading."""

import socket
import threading

import pytest

from hyperlab.grading import eventually
from hyperlab.probes import in_netns

ROUTER = {"public": "192.168.1.111/24", "gw1": "10.10.10.1/24", "gw2": "10.10.20.1/24"}
INNER = {"INNER1": ("gw1", "10.10.10.10/24", "10.10.10.1"), "INNER2": ("gw2", "10.10.20.10/24", "10.10.20.1")}


def addresses(node, mac):
    """The IPv4 addresses (with prefix) of the NIC with this MAC, as `ip -j addr` reports them."""
    import json

    result = node.sh("ip -j addr")
    assert result.ok, result.summary()
    for link in json.loads(result.stdout):
        if link.get("address") == mac:
            return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"]
    return []


def mac_of(lab, node_name, network):
    return next(n.mac for n in lab.plan.node(node_name).nics if n.network == network)


@pytest.mark.step("router-addressing")
def test_router_legs_are_addressed(lab, node):
    """ROUTER has 192.168.1.111, 10.10.10.1 and 10.10.20.1 on the right NICs"""
    router = node("ROUTER")
    for network, expected in ROUTER.items():
        seen = addresses(router, mac_of(lab, "ROUTER", network))
        assert expected in seen, f"ROUTER's {network} NIC ({mac_of(lab, 'ROUTER', network)}) has {seen or 'no address'}, expected {expected}"
    forwarding = router.sh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip()
    assert forwarding == "1", f"ROUTER does not forward (net.ipv4.ip_forward = {forwarding})"


@pytest.mark.step("router-addressing")
def test_inner_hosts_reach_each_other_through_the_router(lab, node):
    """INNER1 and INNER2 are addressed and reach each other through ROUTER"""
    for name, (network, expected, gateway) in INNER.items():
        seen = addresses(node(name), mac_of(lab, name, network))
        assert expected in seen, f"{name} has {seen or 'no address'}, expected {expected}"
        route = node(name).sh("ip -4 route show default").stdout.strip()
        assert f"via {gateway}" in route, f"{name}'s default route is {route or 'missing'}, expected via {gateway}"
    ping = node("INNER1").sh("ping -c 2 -W 3 10.10.20.10")
    assert ping.ok, f"INNER1 cannot reach INNER2 (10.10.20.10):\n{ping.stdout.strip()[-300:]}"


def peer_seen_by_public_listener(lab, node, port=47001):
    """Listen on the public side (the host's 192.168.1.2, in the instance's namespace); let INNER1 connect."""
    seen = []
    with in_netns(lab.netns):
        server = socket.create_server(("192.168.1.2", port))
    server.settimeout(15)

    def accept():
        try:
            conn, peer = server.accept()
            seen.append(peer[0])
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        node("INNER1").sh(f"python3 -c \"import socket; socket.create_connection(('192.168.1.2', {port}), timeout=8)\"")
    finally:
        thread.join(20)
        server.close()
    return seen[0] if seen else None


@pytest.mark.step("nat")
def test_inner_hosts_leave_as_the_router(lab, node):
    """INNER1 reaches the public side with ROUTER's public address as its source"""
    peer = eventually(lambda: peer_seen_by_public_listener(lab, node), timeout=20, every=3,
                      what="a connection from INNER1 to the public side")
    assert peer == "192.168.1.111", f"the public side saw INNER1 as {peer}, expected the router's 192.168.1.111 (no NAT?)"
