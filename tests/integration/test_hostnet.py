"""hyperlab.host.hostnet against real libvirt bridges, with guests simulated by network namespaces.

A tiny lab (nat 192.168.1.0/24 with the host side at .2, isolated 192.168.50.0/24 with .2) runs as
instances t1 and t2 (identical subnets) and t3 (only for the clean-removal test). "Guests" are
namespaces with a veth into a lab bridge; "the internet" is a namespace behind the host
(198.51.100.0/30, 203.0.113.10). Everything stays on this machine: a safety table drops any packet
forwarded from a test interface out of the host's real uplink for the whole module.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperlab.host import hostnet
from hyperlab.render.libvirt_xml import network_xml
from hyperlab.core.load import load_lab
from hyperlab.core.plan import Plan, plan

pytestmark = pytest.mark.libvirtd

LAB_ID = "hnit"
TOPOLOGY = """\
name: hnit
networks:
  public: {cidr: 192.168.1.0/24, mode: nat, host: 192.168.1.2}
  lan: {cidr: 192.168.50.0/24, mode: isolated, host: 192.168.50.2}
nodes:
  A: {image: tiny, nics: [{network: public, ip: 192.168.1.10}]}
"""
LAB = f"id: {LAB_ID}\ntitle: {{ko: 가, en: a}}\ntopology: hnit\nsteps: [{{id: s, title: {{ko: 가, en: a}}, points: 1}}]\n"
INTERNET, UPLINK_HOST, UPLINK_NS = "203.0.113.10", "198.51.100.1/30", "198.51.100.2/30"
SAFETY = "hnt-safety"  # nft table of the test's own
DOCKER_MASQ = ["POSTROUTING", "-s", "192.168.0.0/16", "-m", "comment", "--comment", "hnt-docker-like", "-j", "MASQUERADE"]

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall(f"{sys.argv[3]} {peer[0]}".encode()); c.close()
"""
CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        c.settimeout(float(sys.argv[3])); print(c.recv(200).decode())
except OSError as e:
    print(f"ERR {e}"); sys.exit(1)
"""


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode:
        raise AssertionError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def in_ns(ns: str | None, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)


def connect(ns: str | None, addr: str, port: int, timeout: float = 1.0) -> str | None:
    """The listener's answer ("label peer-address"), or None when the connection fails."""
    done = subprocess.run(in_ns(ns, sys.executable, "-c", CLIENT, addr, str(port), str(timeout)),
                          capture_output=True, text=True, timeout=timeout + 10, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


class Sandbox:
    """Namespaces, veths, routes and listeners the tests create; all removed at the end."""

    def __init__(self) -> None:
        self.netns: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.routes: list[str] = []

    def ns(self, name: str) -> str:
        sh("ip", "netns", "del", name, check=False)  # a leftover of an interrupted run
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        self.netns.append(name)
        return name

    def leg(self, ns: str, outer: str, inner: str, cidr: str, bridge: str | None = None,
            outer_cidr: str | None = None) -> None:
        sh("ip", "link", "del", outer, check=False)
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
        self.links.append(outer)
        if bridge:
            sh("ip", "link", "set", outer, "master", bridge)
        if outer_cidr:
            sh("ip", "addr", "add", outer_cidr, "dev", outer)
        sh("ip", "link", "set", outer, "up")
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", inner)
        sh("ip", "-n", ns, "link", "set", inner, "up")

    def guest(self, name: str, bridge: str, cidr: str, gateway: str | None = None) -> str:
        ns = self.ns(name)
        self.leg(ns, name, "eth0", cidr, bridge)
        if gateway:
            sh("ip", "-n", ns, "route", "add", "default", "via", gateway)
        return ns

    def listen(self, ns: str | None, addr: str, port: int, label: str) -> None:
        proc = subprocess.Popen(in_ns(ns, sys.executable, "-c", SERVER, addr, str(port), label),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout and proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for route in self.routes:
            sh("ip", "route", "del", route, check=False)
        for link in self.links:
            sh("ip", "link", "del", link, check=False)
        for ns in self.netns:
            sh("ip", "netns", "del", ns, check=False)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    root = tmp_path_factory.mktemp("hostnet")
    (root / "topologies").mkdir()
    (root / "labs" / LAB_ID).mkdir(parents=True)
    (root / "topologies" / "hnit.yaml").write_text(TOPOLOGY)
    (root / "labs" / LAB_ID / "lab.yaml").write_text(LAB)
    loaded = load_lab(LAB_ID, root)
    return {name: plan(loaded, name) for name in ("t1", "t2", "t3")}


@pytest.fixture(scope="module")
def networks(plans: dict[str, Plan]) -> Iterator[None]:
    """The libvirt networks of t1, t2, t3, defined and started from the plans' XML."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # we look up names that may not exist
    conn = libvirt.open("qemu:///system")
    made = []

    def drop(name: str) -> None:
        try:
            net = conn.networkLookupByName(name)
        except libvirt.libvirtError:
            return
        if net.isActive():
            net.destroy()
        net.undefine()

    try:
        for p in plans.values():
            for n in p.networks:
                drop(n.libvirt_name)  # a leftover of an interrupted run
                net = conn.networkDefineXML(network_xml(p, n))
                made.append(n.libvirt_name)
                net.create()
        yield
    finally:
        for name in made:
            drop(name)
        conn.close()


def _uplink_device() -> str:
    routes = json.loads(sh("ip", "-j", "route", "show", "default") or "[]")
    return routes[0]["dev"] if routes else "lo"


@pytest.fixture(scope="module")
def safety(plans: dict[str, Plan]) -> Iterator[None]:
    """Nothing a test does may leave the machine: drop whatever is forwarded from a test interface to
    the real uplink (e.g. a lab reply that a host NAT rule rewrote and br_netfilter then routed). It
    runs last (priority 300), so its counter shows what got past everything else."""
    names = {p.host_side.host_veth for p in plans.values()} | {n.bridge for p in plans.values() for n in p.networks}
    names.add("hnt*")
    elements = ", ".join(f'"{n}"' for n in sorted(names))
    sh("nft", "-f", "-", stdin=f"table ip {SAFETY} {{\n chain forward {{\n  type filter hook forward priority 300; "
       f"policy accept;\n  iifname {{ {elements} }} oifname \"{_uplink_device()}\" counter drop\n }}\n}}\n")
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    try:
        yield
    finally:
        Path("/proc/sys/net/ipv4/ip_forward").write_text(forward)  # ensure_host_side turns it on
        sh("nft", "delete", "table", "ip", SAFETY, check=False)


@pytest.fixture(scope="module")
def lab(plans: dict[str, Plan], networks: None, safety: None) -> Iterator[dict[str, object]]:
    """t1 and t2 up, with guests, a router with a port forward, and "the internet" behind the host."""
    t1, t2 = plans["t1"], plans["t2"]
    box = Sandbox()
    try:
        started = time.monotonic()
        changes = {name: hostnet.ensure_host_side(plans[name]) for name in ("t1", "t2")}
        ensure_seconds = time.monotonic() - started
        pub1, lan1 = (n.bridge for n in t1.networks)
        pub2, _lan2 = (n.bridge for n in t2.networks)
        up = box.ns("hnt-up")
        box.leg(up, "hnt-up", "eth0", UPLINK_NS, outer_cidr=UPLINK_HOST)
        sh("ip", "-n", up, "addr", "add", f"{INTERNET}/32", "dev", "lo")
        sh("ip", "route", "add", f"{INTERNET}/32", "via", UPLINK_NS.split("/")[0])
        box.routes.append(f"{INTERNET}/32")
        box.listen(up, INTERNET, 80, "internet")
        for p in (t1, t2):
            box.listen(None, str(p.host_side.host_end.ip), 7000, f"host-{p.instance}")
            box.listen(p.host_side.netns, "192.168.1.2", 7001, f"gw-{p.instance}")
        box.listen(box.guest("hnt-a1", pub1, "192.168.1.10/24", "192.168.1.2"), "192.168.1.10", 9000, "t1-a")
        box.guest("hnt-b1", pub1, "192.168.1.20/24", "192.168.1.2")
        box.listen(box.guest("hnt-c1", pub1, "192.168.1.30/24", "192.168.1.2"), "192.168.1.30", 9100, "t1-only")
        box.listen(box.guest("hnt-l1", lan1, "192.168.50.20/24", "192.168.50.2"), "192.168.50.20", 9000, "t1-lan")
        box.listen(box.guest("hnt-a2", pub2, "192.168.1.10/24", "192.168.1.2"), "192.168.1.10", 9000, "t2-a")
        box.guest("hnt-b2", pub2, "192.168.1.20/24", "192.168.1.2")
        # a router guest on both t1 networks forwards 192.168.1.111:8080 to an inner guest's port 80
        router = box.ns("hnt-r")
        box.leg(router, "hnt-r0", "eth0", "192.168.1.111/24", pub1)
        box.leg(router, "hnt-r1", "eth1", "192.168.50.1/24", lan1)
        sh("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", router, "nft", "-f", "-", stdin=(
            "table ip router {\n chain pre {\n  type nat hook prerouting priority dstnat;\n"
            "  tcp dport 8080 dnat to 192.168.50.10:80\n }\n}\n"))
        box.listen(box.guest("hnt-in", lan1, "192.168.50.10/24", "192.168.50.1"), "192.168.50.10", 80, "inner")
        yield {"changes": changes, "ensure_seconds": ensure_seconds}
    finally:
        box.close()
        for name in ("t1", "t2"):
            hostnet.remove_host_side(plans[name])


# --------------------------------------------------------------------------- snapshots

FOREIGN = re.compile(r"\b(?:hl|ht|hv)[0-9a-f]{10}[np]?\b|\bhl-[0-9a-f]{10}\b|\bvnet\d+\b")


def snapshot(ours: set[str]) -> dict[str, set[str]]:
    """The host's links, namespaces, routes, nft ruleset and iptables rules, minus lines about
    other hyperlab instances and guests (other tests and sessions may run on this host too)."""
    raw = {
        "links": {link["ifname"] for link in json.loads(sh("ip", "-j", "link", "show"))},
        "netns": {n["name"] for n in json.loads(sh("ip", "-j", "netns", "list") or "[]")},
        "routes": set(sh("ip", "route", "show").splitlines()),
        "nft": set(sh("nft", "-s", "list", "ruleset").splitlines()),
        "iptables": set(sh("iptables", "-w", "-S").splitlines()) | set(sh("iptables", "-w", "-t", "nat", "-S").splitlines()),
    }
    return {k: {line for line in v if set(FOREIGN.findall(line)) <= ours} for k, v in raw.items()}


def names_of(p: Plan) -> set[str]:
    hs = p.host_side
    names = {hs.netns, hs.host_veth, hs.host_veth + "n"}
    for n in p.networks:
        names.add(n.bridge)
        if n.host_veth:
            names |= {n.host_veth, n.host_veth + "p"}
    return names


# ------------------------------------------------------------------------------- tests


def test_ensure_is_idempotent_and_remove_restores_the_host_exactly(plans: dict[str, Plan], networks: None,
                                                                    safety: None) -> None:
    p = plans["t3"]
    ours = names_of(p)
    before = snapshot(ours)
    assert not hostnet.host_side_present(p)
    first = hostnet.ensure_host_side(p)
    assert any("created network namespace" in c for c in first) and any("hyperlab-host" in c for c in first)
    assert hostnet.ensure_host_side(p) == []
    assert hostnet.host_side_present(p)
    during = snapshot(ours)
    assert p.host_side.netns in during["netns"] and {p.host_side.host_veth} < during["links"]
    assert any(hostnet.tag(p) in line for line in during["nft"])
    if hostnet.br_netfilter_active():
        assert any(hostnet.tag(p) in line for line in during["iptables"])
    removed = hostnet.remove_host_side(p)
    assert any("deleted network namespace" in c for c in removed)
    after = snapshot(ours)
    for kind in before:
        assert after[kind] == before[kind], (kind, "added", after[kind] - before[kind], "gone", before[kind] - after[kind])
    assert hostnet.remove_host_side(p) == []
    assert not hostnet.host_side_present(p)


def test_a_missing_bridge_is_a_clear_error(plans: dict[str, Plan]) -> None:
    p = plans["t3"].model_copy(update={"networks": [
        n.model_copy(update={"bridge": "hlnosuchbr"}) for n in plans["t3"].networks]})
    with pytest.raises(hostnet.HostNetError, match="bridge hlnosuchbr of network public does not exist"):
        hostnet.ensure_host_side(p)
    assert not any(p.host_side.netns == n["name"] for n in json.loads(sh("ip", "-j", "netns", "list") or "[]"))


def test_nat_guest_reaches_its_gateway_the_host_and_the_internet_masqueraded(plans: dict[str, Plan], lab: dict) -> None:
    t1 = plans["t1"]
    assert connect("hnt-b1", "192.168.1.2", 7001) == "gw-t1 192.168.1.20"  # the lesson's .2, no NAT on its own net
    assert connect("hnt-b1", str(t1.host_side.host_end.ip), 7000) == f"host-t1 {t1.host_side.netns_end.ip}"
    assert connect("hnt-b1", INTERNET, 80) == "internet 198.51.100.1"  # masqueraded twice, like VMware NAT
    assert connect("hnt-b1", "192.168.1.10", 9000) == "t1-a 192.168.1.20"  # guest to guest
    assert connect(t1.host_side.netns, "192.168.1.10", 9000) == "t1-a 192.168.1.2"  # host-side tools


def test_isolated_guest_cannot_leave(plans: dict[str, Plan], lab: dict) -> None:
    t1 = plans["t1"]
    assert connect(t1.host_side.netns, "192.168.50.20", 9000) == "t1-lan 192.168.50.2"  # the namespace reaches it
    assert connect("hnt-l1", str(t1.host_side.host_end.ip), 7000) is None
    assert connect("hnt-l1", INTERNET, 80) is None
    assert connect("hnt-l1", "192.168.1.10", 9000) is None  # nor the nat network through the namespace


def test_two_instances_with_the_same_subnets_stay_apart(plans: dict[str, Plan], lab: dict) -> None:
    t1, t2 = plans["t1"], plans["t2"]
    assert connect(t1.host_side.netns, "192.168.1.10", 9000) == "t1-a 192.168.1.2"
    assert connect(t2.host_side.netns, "192.168.1.10", 9000) == "t2-a 192.168.1.2"
    assert connect("hnt-b2", "192.168.1.10", 9000) == "t2-a 192.168.1.20"
    assert connect("hnt-b2", "192.168.1.2", 7001) == "gw-t2 192.168.1.20"
    assert connect("hnt-b1", "192.168.1.30", 9100) == "t1-only 192.168.1.20"
    assert connect("hnt-b2", "192.168.1.30", 9100) is None  # t1's guest does not exist for t2
    assert connect(t2.host_side.netns, "192.168.1.30", 9100) is None
    assert connect("hnt-b2", INTERNET, 80) == "internet 198.51.100.1"  # both reach the outside


@pytest.fixture
def docker_like() -> Iterator[None]:
    """What Docker does to a host: FORWARD policy DROP and a broad MASQUERADE inserted first."""
    policy = sh("iptables", "-w", "-S", "FORWARD").splitlines()[0].split()[-1]
    sh("iptables", "-w", "-P", "FORWARD", "DROP")
    try:
        sh("iptables", "-w", "-t", "nat", "-I", *DOCKER_MASQ[:1], "1", *DOCKER_MASQ[1:])
        yield
    finally:
        while not subprocess.run(["iptables", "-w", "-t", "nat", "-D", *DOCKER_MASQ], capture_output=True,
                                 check=False).returncode:
            pass
        sh("iptables", "-w", "-P", "FORWARD", policy)


def _remove_guards(p: Plan) -> None:
    for table, _chain, args in hostnet.observe(p).guard_lines:
        sh("iptables", "-w", "-t", table, "-D", *args)


def _counter(table: str, chain: str, needle: str) -> int:
    lines = [line for line in sh("nft", "list", "chain", "ip", table, chain).splitlines() if needle in line]
    return sum(int(n) for line in lines for n in re.findall(r"counter packets (\d+)", line))


def _works(p: Plan) -> dict[str, str | None]:
    return {
        "guest-to-guest": connect("hnt-b1", "192.168.1.10", 9000),
        "port-forward": connect(p.host_side.netns, "192.168.1.111", 8080),
        "internet": connect("hnt-b1", INTERNET, 80),
    }


WORKING = {"guest-to-guest": "t1-a 192.168.1.20", "port-forward": "inner 192.168.1.2", "internet": "internet 198.51.100.1"}


def test_docker_like_host_is_handled_and_breaks_without_the_guards(plans: dict[str, Plan], lab: dict,
                                                                  docker_like: None) -> None:
    if not hostnet.br_netfilter_active():
        pytest.skip("br_netfilter is off here: bridged frames never see iptables")
    t1 = plans["t1"]
    # Docker's MASQUERADE now precedes our guards (as after a Docker restart): ensure moves them first
    moved = hostnet.ensure_host_side(t1)
    assert moved and all("iptables guard" in c for c in moved), moved
    assert _works(t1) == WORKING
    _remove_guards(t1)
    stopped, leaked = _counter("hyperlab-host", "forward", hostnet.tag(t1)), _counter(SAFETY, "forward", "drop")
    assert _works(t1) == {k: None for k in WORKING}  # proves the test can fail: each path needs the guards
    # the rewritten guest-to-guest connection made the host route the lab's reply to its uplink:
    # hyperlab-host's forward rule dropped it, nothing reached the test's last-resort safety net
    assert _counter("hyperlab-host", "forward", hostnet.tag(t1)) > stopped
    assert _counter(SAFETY, "forward", "drop") == leaked
    again = hostnet.ensure_host_side(t1)
    assert again and all(c.startswith("iptables guard") for c in again), again
    assert _works(t1) == WORKING
    assert hostnet.ensure_host_side(t1) == []


def test_forward_drop_on_bridged_frames_needs_an_iptables_accept_not_an_nft_table(plans: dict[str, Plan]) -> None:
    """Without libvirt's own FORWARD accept (libvirt's nftables backend, newer libvirt): in a private
    namespace with its own bridge, a FORWARD policy DROP drops bridged frames; an nftables table of
    ours at a higher priority cannot undo it; our guard rule in the iptables chain does."""
    box = Sandbox()
    try:
        host = box.ns("hnt-x0")
        bridge = plans["t1"].networks[0].bridge
        sh("ip", "-n", host, "link", "add", bridge, "type", "bridge")
        sh("ip", "-n", host, "link", "set", bridge, "up")
        if sh("ip", "netns", "exec", host, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").strip() != "1":
            pytest.skip("br_netfilter is off in new namespaces here")
        for name, addr in (("hnt-xa", "10.9.0.1/24"), ("hnt-xb", "10.9.0.2/24")):
            ns = box.ns(name)
            sh("ip", "-n", host, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", host, "link", "set", name, "master", bridge, "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        box.listen("hnt-xb", "10.9.0.2", 9000, "xb")
        assert connect("hnt-xa", "10.9.0.2", 9000) == "xb 10.9.0.1"
        sh("ip", "netns", "exec", host, "iptables", "-w", "-P", "FORWARD", "DROP")
        assert connect("hnt-xa", "10.9.0.2", 9000) is None
        sh("ip", "netns", "exec", host, "nft", "-f", "-", stdin=(
            f'table ip early {{\n chain forward {{\n  type filter hook forward priority -100; policy accept;\n'
            f'  iifname "{bridge}" oifname "{bridge}" accept\n }}\n}}\n'))
        assert connect("hnt-xa", "10.9.0.2", 9000) is None
        guard = next(g for g in hostnet.guard_rules(plans["t1"]) if g.chain == "FORWARD" and bridge in g.args)
        sh("ip", "netns", "exec", host, "iptables", "-w", "-I", "FORWARD", "1", *guard.args)
        assert connect("hnt-xa", "10.9.0.2", 9000) == "xb 10.9.0.1"
    finally:
        box.close()


def test_report(plans: dict[str, Plan], lab: dict) -> None:
    """Not an assertion of behaviour: what ensure did, for the test log (-rA)."""
    print("bridge-nf-call-iptables active:", hostnet.br_netfilter_active())
    print(f"ensure of two instances from nothing: {lab['ensure_seconds']:.2f} s")
    print("safety net (forwarded from a test interface to the uplink):",
          re.findall(r"counter packets \d+ bytes \d+ drop", sh("nft", "list", "table", "ip", SAFETY)))
    for name, changes in lab["changes"].items():  # type: ignore[union-attr]
        print(name, *changes, sep="\n  ")
