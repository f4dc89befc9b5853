"""hyperlab.render.hostnet_rules, the pure part of the host side: nft rulesets, iptables guards and ip commands from a Plan (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperlab.render import hostnet_rules as rules
from hyperlab.render.hostnet_rules import HOST, Guard, Link, State
from hyperlab.core.load import load_lab
from hyperlab.core.plan import Plan, plan

TOPOLOGY = """\
name: hn
networks:
  public: {cidr: 192.168.1.0/24, mode: nat, host: 192.168.1.2}
  lan: {cidr: 192.168.50.0/24, mode: isolated, host: 192.168.50.2}
  dark: {cidr: 192.168.60.0/24, mode: isolated}
  routed: {cidr: 10.77.0.0/24, mode: route, host: 10.77.0.1}
  wire: {cidr: 172.16.0.0/24, mode: bridge, bridge: br0}
nodes:
  A: {image: tiny, nics: [{network: public, ip: 192.168.1.10}]}
"""
LAB = "id: hn\ntitle: {ko: 가, en: a}\ntopology: hn\nsteps: [{id: s, title: {ko: 가, en: a}, points: 1}]\n"


@pytest.fixture(scope="module")
def p(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    root = tmp_path_factory.mktemp("hostnet")
    (root / "topologies").mkdir()
    (root / "labs" / "hn").mkdir(parents=True)
    (root / "topologies" / "hn.yaml").write_text(TOPOLOGY)
    (root / "labs" / "hn" / "lab.yaml").write_text(LAB)
    return plan(load_lab("hn", Path(root)), "t1")


def net(p: Plan, name: str):
    return next(n for n in p.networks if n.name == name)


def commands(steps: list[rules.Step]) -> list[str]:
    return [" ".join(argv) for step in steps for argv in step.commands]


def test_served_networks_are_those_with_a_host_address_except_bridge_mode(p: Plan) -> None:
    assert [n.name for n in rules.served(p)] == ["public", "lan", "routed"]


def test_nat_network_masquerades_out_of_the_transit_link_only(p: Plan) -> None:
    text, inside, public = rules.netns_ruleset(p), p.host_side.host_veth + "n", net(p, "public")
    assert f'iifname "{public.host_veth}" oifname "{inside}" accept' in text
    assert f'oifname "{inside}" ip saddr 192.168.1.0/24 masquerade' in text
    assert f'iifname "{inside}" oifname "{public.host_veth}"' not in text  # no new connections inwards
    assert "ct state established,related accept" in text  # replies come back
    assert "policy drop" in text.split("chain forward")[1].split("}")[0]


def test_isolated_network_forwards_nothing(p: Plan) -> None:
    text, lan = rules.netns_ruleset(p), net(p, "lan")
    assert lan.host_veth and lan.host_veth not in text
    assert "192.168.50.0/24" not in text and "192.168.60.0/24" not in text


def test_route_network_forwards_both_ways_without_nat_and_the_host_routes_it(p: Plan) -> None:
    text, inside, routed = rules.netns_ruleset(p), p.host_side.host_veth + "n", net(p, "routed")
    assert f'iifname "{routed.host_veth}" oifname "{inside}" accept' in text
    assert f'iifname "{inside}" oifname "{routed.host_veth}" accept' in text
    assert "10.77.0.0/24" not in text  # no masquerade
    host_routes = [c for c in commands(rules.steps(p, State())) if c.startswith("ip route replace")]
    assert host_routes == [f"ip route replace 10.77.0.0/24 via {p.host_side.netns_end.ip} dev {p.host_side.host_veth}"]


def test_ruleset_replaces_one_table_atomically_and_names_the_instance(p: Plan) -> None:
    text = rules.netns_ruleset(p)
    assert text.startswith("table ip hyperlab\ndelete table ip hyperlab\ntable ip hyperlab {\n")
    assert f'comment "{rules.ns_table_comment(p)}"' in text
    assert rules.ns_table_comment(p).startswith("hyperlab:hn.t1 ")
    assert text.count("table ip") == 3


def test_host_rules_masquerade_the_transit_and_stop_routing_from_our_bridges(p: Plan) -> None:
    hs = p.host_side
    wanted = rules.host_rules(p)
    assert wanted[("postrouting", f"hyperlab:hn.t1 {hs.transit}")] == f'ip saddr {hs.transit} oifname != "{hs.host_veth}" masquerade'
    (forward_key, forward), = [(k, v) for k, v in wanted.items() if k[0] == "forward"]
    assert forward_key[1].startswith("hyperlab:hn.t1 bridges ")
    bridges = ", ".join(f'"{b}"' for b in sorted(n.bridge for n in p.networks if n.mode != "bridge"))
    assert forward == f"iifname {{ {bridges} }} oifname != {{ {bridges} }} counter drop"
    assert "br0" not in forward
    text = rules.host_script(p, [("postrouting", f"hyperlab:hn.t1 {hs.transit}")])
    assert text.splitlines() == [
        "add table ip hyperlab-host",
        "add chain ip hyperlab-host postrouting { type nat hook postrouting priority srcnat; policy accept; }",
        "add chain ip hyperlab-host forward { type filter hook forward priority filter - 10; policy accept; }",
        (f'add rule ip hyperlab-host postrouting ip saddr {hs.transit} oifname != "{hs.host_veth}" masquerade '
         f'comment "hyperlab:hn.t1 {hs.transit}"'),
    ]


def test_guards_cover_our_bridges_and_the_transit_link_but_never_a_host_bridge(p: Plan) -> None:
    guards = rules.guard_rules(p)
    tagged = ("-m", "comment", "--comment", "hyperlab:hn.t1")
    bridges = sorted(n.bridge for n in p.networks if n.mode != "bridge")
    assert len(bridges) == 4 and all(" ".join(tagged) in " ".join(g.args) for g in guards)
    for b in bridges:
        assert Guard("filter", "FORWARD", ("-i", b, "-o", b, *tagged, "-j", "ACCEPT")) in guards
        assert Guard("nat", "PREROUTING", ("-i", b, *tagged, "-j", "RETURN")) in guards
        assert Guard("nat", "POSTROUTING", ("-o", b, *tagged, "-j", "RETURN")) in guards
    assert not any("br0" in g.args for g in guards)
    assert Guard("filter", "FORWARD", ("-i", p.host_side.host_veth, *tagged, "-j", "ACCEPT")) in guards


def test_from_nothing_every_object_is_created_in_order(p: Plan) -> None:
    hs, ns = p.host_side, p.host_side.netns
    cmds = commands(rules.steps(p, State()))
    assert cmds[0] == f"ip netns add {ns}"
    assert f"ip link add {hs.host_veth} type veth peer name {hs.host_veth}n netns {ns}" in cmds
    public = net(p, "public")
    assert f"ip link add {public.host_veth}p type veth peer name {public.host_veth} netns {ns}" in cmds
    assert f"ip link set {public.host_veth}p master {public.bridge}" in cmds
    assert f"ip -n {ns} addr replace 192.168.1.2/24 dev {public.host_veth}" in cmds
    assert f"ip addr replace {hs.host_end} dev {hs.host_veth}" in cmds
    assert f"ip -n {ns} addr replace {hs.netns_end} dev {hs.host_veth}n" in cmds
    assert f"ip -n {ns} link set lo up" in cmds
    assert f"ip -n {ns} route replace default via {hs.host_end.ip} dev {hs.host_veth}n" in cmds
    assert "sysctl -qw net.ipv4.ip_forward=1" in cmds
    assert f"ip netns exec {ns} sysctl -qw net.ipv4.ip_forward=1" in cmds
    assert f"ip netns exec {ns} nft -f -" in cmds and "nft -f -" in cmds
    assert not any("wire" in c or "br0" in c for c in cmds)
    # links exist before they are configured, configured before routes use them
    assert cmds.index(f"ip -n {ns} addr replace {hs.netns_end} dev {hs.host_veth}n") < cmds.index(
        f"ip -n {ns} route replace default via {hs.host_end.ip} dev {hs.host_veth}n")
    assert not any(c.startswith("iptables") for c in cmds)  # no br_netfilter, no guards


def test_guards_only_with_br_netfilter_and_only_into_chains_that_exist(p: Plan) -> None:
    cmds = commands(rules.steps(p, State(brnf=True, guarded={("filter", "FORWARD")})))
    guards = [c for c in cmds if c.startswith("iptables")]
    assert guards and all(c.startswith("iptables -w -t filter -I FORWARD 1 ") for c in guards)
    assert len(guards) == 4 + 2
    # inserted at 1 in reverse: the final order is guard_rules' order
    first = next(g for g in rules.guard_rules(p) if g.table == "filter")
    assert guards[-1].endswith(" ".join(first.args))


def in_place(p: Plan, **extra: object) -> State:
    """A State as `observe` would report it once everything is in place."""
    want = rules.desired(p, State(brnf=True, guarded=set(rules.GUARD_CHAINS)))
    have = State(netns=True, links=dict(want.links), routes=set(want.routes), forwarding=dict(want.forwarding),
                 ns_table=want.ns_table, host_rules=dict.fromkeys(rules.host_rules(p), 7), guards=set(want.guards),
                 brnf=True, guarded=set(rules.GUARD_CHAINS))
    have.addresses = {k: frozenset({v.address}) if v.address else frozenset() for k, v in want.links.items()}
    for k, v in extra.items():
        setattr(have, k, v)
    return have


def test_nothing_to_do_when_everything_is_in_place(p: Plan) -> None:
    assert rules.steps(p, in_place(p)) == []


def test_only_what_is_missing_is_done(p: Plan) -> None:
    have = in_place(p)
    public = net(p, "public")
    have.links[(HOST, public.host_veth + "p")] = Link(master=None, up=False)  # detached from a restarted bridge
    have.forwarding[HOST] = False
    have.ns_table = "hyperlab:hn.t1 stale"
    cmds = commands(rules.steps(p, have))
    assert cmds == [f"ip link set {public.host_veth}p master {public.bridge}", f"ip link set {public.host_veth}p up",
                    "sysctl -qw net.ipv4.ip_forward=1", f"ip netns exec {p.host_side.netns} nft -f -"]


def test_a_stale_host_rule_of_this_instance_is_replaced(p: Plan) -> None:
    have = in_place(p)
    have.host_rules = {("postrouting", "hyperlab:hn.t1 169.254.0.4/30"): 3,
                       **{k: 7 for k in rules.host_rules(p) if k[0] == "forward"}}
    steps = rules.steps(p, have)
    assert commands(steps) == ["nft delete rule ip hyperlab-host postrouting handle 3", "nft -f -"]
    assert steps[1].stdin and "masquerade" in steps[1].stdin and " forward iifname" not in steps[1].stdin


def test_guards_behind_a_foreign_rule_are_moved_first(p: Plan) -> None:
    bridge = net(p, "public").bridge
    line = ["POSTROUTING", "-o", bridge, "-m", "comment", "--comment", "hyperlab:hn.t1", "-j", "RETURN"]
    have = in_place(p, misplaced={("nat", "POSTROUTING")}, guard_lines=[("nat", "POSTROUTING", line)])
    have.guards = {g for g in have.guards if g.chain != "POSTROUTING"}
    cmds = commands(rules.steps(p, have))
    assert cmds[0] == "iptables -w -t nat -D " + " ".join(line)
    assert len(cmds) == 1 + 4 and all(" -I POSTROUTING 1 " in c for c in cmds[1:])


def test_removal_deletes_only_what_was_found(p: Plan) -> None:
    assert rules.removal_steps(p, State()) == []
    hs = p.host_side
    have = in_place(p, guard_lines=[("filter", "FORWARD", ["FORWARD", "-i", hs.host_veth, "-m", "comment",
                                                            "--comment", "hyperlab:hn.t1", "-j", "ACCEPT"])])
    have.routes.add((HOST, "169.254.0.0/16", "", "eth0"))  # not ours
    have.routes.add((HOST, str(hs.transit), "", hs.host_veth))  # the kernel's; goes with the link
    cmds = commands(rules.removal_steps(p, have))
    assert cmds[0].startswith(f"iptables -w -t filter -D FORWARD -i {hs.host_veth} ")
    assert cmds[1:3] == ["nft delete rule ip hyperlab-host postrouting handle 7",
                         "nft delete rule ip hyperlab-host forward handle 7"]
    assert cmds[3] == f"ip route del 10.77.0.0/24 via {hs.netns_end.ip} dev {hs.host_veth}"
    assert cmds[-1] == f"ip netns del {hs.netns}"
    dels = [c for c in cmds if c.startswith("ip link del")]
    assert dels == [f"ip link del {hs.host_veth}"] + [f"ip link del {n.host_veth}p" for n in rules.served(p)]


def test_two_instances_share_nothing_but_the_host_table(tmp_path: Path, p: Plan) -> None:
    root = tmp_path
    (root / "topologies").mkdir()
    (root / "labs" / "hn").mkdir(parents=True)
    (root / "topologies" / "hn.yaml").write_text(TOPOLOGY)
    (root / "labs" / "hn" / "lab.yaml").write_text(LAB)
    q = plan(load_lab("hn", root), "t2")
    words = lambda x: set(" ".join(commands(rules.steps(x, State(brnf=True, guarded=set(rules.GUARD_CHAINS))))).split())
    shared = {w for w in words(p) & words(q) if w.startswith(("hl", "ht", "hv", "hyperlab:"))}
    assert shared == set()
    assert not set(rules.host_rules(p)) & set(rules.host_rules(q))
