"""The host side of one lab instance, as commands and rulesets (pure: a Plan and an observed `State`
in, the steps that put the host side in place out). `hyperlab.host.hostnet` observes the host and
runs the steps; its docstring says what the host side is and why.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field

from hyperlab.core.plan import Plan, PlanNetwork

NS_TABLE = "hyperlab"
HOST_TABLE = "hyperlab-host"
HOST_CHAINS = {  # the host table's chains; `forward` runs before iptables' (priority filter)
    "postrouting": "type nat hook postrouting priority srcnat; policy accept;",
    "forward": "type filter hook forward priority filter - 10; policy accept;",
}
GUARD_CHAINS = (("filter", "FORWARD"), ("nat", "PREROUTING"), ("nat", "POSTROUTING"))
HOST = ""  # the `where` of host objects; namespace objects use the namespace's name


@dataclass(frozen=True)
class Link:
    address: str | None = None  # "192.168.1.2/24"
    master: str | None = None
    up: bool = True


@dataclass(frozen=True)
class Guard:
    table: str  # iptables table: filter or nat
    chain: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Step:
    what: str
    commands: tuple[tuple[str, ...], ...]
    stdin: str | None = None  # fed to the step's only command (nft -f -)


@dataclass
class State:
    """What is (observed) or should be (desired) in place for one instance."""

    netns: bool = False
    links: dict[tuple[str, str], Link] = field(default_factory=dict)  # (where, name)
    addresses: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    routes: set[tuple[str, str, str, str]] = field(default_factory=set)  # (where, dst, via, dev)
    forwarding: dict[str, bool] = field(default_factory=dict)  # where -> ip_forward
    ns_table: str | None = None  # the comment of the namespace's table
    host_rules: dict[tuple[str, str], int] = field(default_factory=dict)  # (chain, our comment) -> rule handle
    guards: set[Guard] = field(default_factory=set)
    guard_lines: list[tuple[str, str, list[str]]] = field(default_factory=list)  # tagged, for removal
    guarded: set[tuple[str, str]] = field(default_factory=set)  # (table, chain) that exist
    misplaced: set[tuple[str, str]] = field(default_factory=set)  # chains where a foreign rule precedes ours
    brnf: bool = False  # bridged frames pass iptables


def tag(plan: Plan) -> str:
    return f"hyperlab:{plan.lab}.{plan.instance}"


def served(plan: Plan) -> list[PlanNetwork]:
    """Networks on which the namespace holds the host address."""
    return [n for n in plan.networks if n.mode != "bridge" and n.host_address and n.host_veth]


def _transit_inside(plan: Plan) -> str:
    return plan.host_side.host_veth + "n"


def _ns_chains(plan: Plan) -> str:
    inside = _transit_inside(plan)
    forward, nat = ["ct state established,related accept"], []
    for net in served(plan):
        if net.mode == "nat":
            forward.append(f'iifname "{net.host_veth}" oifname "{inside}" accept comment "{net.name}: nat"')
            nat.append(f'oifname "{inside}" ip saddr {net.cidr} masquerade comment "{net.name}"')
        elif net.mode == "route":
            forward.append(f'iifname "{net.host_veth}" oifname "{inside}" accept comment "{net.name}: route"')
            forward.append(f'iifname "{inside}" oifname "{net.host_veth}" accept comment "{net.name}: route"')
        # isolated: the policy drops everything
    return "\n".join(
        ["\tchain forward {", "\t\ttype filter hook forward priority filter; policy drop;",
         *(f"\t\t{r}" for r in forward), "\t}",
         "\tchain postrouting {", "\t\ttype nat hook postrouting priority srcnat; policy accept;",
         *(f"\t\t{r}" for r in nat), "\t}"])


def ns_table_comment(plan: Plan) -> str:
    """The namespace table's comment: the instance and a digest of the rules, to tell if they are current."""
    return f"{tag(plan)} {hashlib.sha256(_ns_chains(plan).encode()).hexdigest()[:12]}"


def netns_ruleset(plan: Plan) -> str:
    """`nft -f` text that atomically replaces `table ip hyperlab` inside the namespace."""
    return (f"table ip {NS_TABLE}\ndelete table ip {NS_TABLE}\n"
            f'table ip {NS_TABLE} {{\n\tcomment "{ns_table_comment(plan)}"\n{_ns_chains(plan)}\n}}\n')


def host_rules(plan: Plan) -> dict[tuple[str, str], str]:
    """This instance's rules in the host's `table ip hyperlab-host`: (chain, comment) -> rule.

    postrouting: masquerade the transit /30 out of the host. forward: nothing is routed in from our
    bridges (they have no address; bridged frames keep iif == oif). With br_netfilter, a host NAT
    rule that rewrote a lab connection made the host route the lab's replies to its uplink (seen in
    the integration test); a drop is final in nftables, so this stops such leaks whatever else the
    host's firewall does.
    """
    hs, rules = plan.host_side, {}
    rules[("postrouting", f"{tag(plan)} {hs.transit}")] = f'ip saddr {hs.transit} oifname != "{hs.host_veth}" masquerade'
    bridges = sorted({n.bridge for n in plan.networks if n.mode != "bridge"})
    if bridges:
        names = ", ".join(f'"{b}"' for b in bridges)
        digest = hashlib.sha256(names.encode()).hexdigest()[:8]
        rules[("forward", f"{tag(plan)} bridges {digest}")] = f"iifname {{ {names} }} oifname != {{ {names} }} counter drop"
    return rules


def host_script(plan: Plan, keys: list[tuple[str, str]]) -> str:
    """`nft -f` text: our host table and chains (created if missing) and the given rules of this instance."""
    rules = host_rules(plan)
    lines = [f"add table ip {HOST_TABLE}"]
    lines += [f"add chain ip {HOST_TABLE} {chain} {{ {spec} }}" for chain, spec in HOST_CHAINS.items()]
    lines += [f'add rule ip {HOST_TABLE} {chain} {rules[(chain, comment)]} comment "{comment}"' for chain, comment in keys]
    return "\n".join(lines) + "\n"


def guard_rules(plan: Plan) -> list[Guard]:
    """iptables rules that keep the host's firewall off our bridges and the transit link."""
    comment = ("-m", "comment", "--comment", tag(plan))
    guards = []
    for bridge in sorted({n.bridge for n in plan.networks if n.mode != "bridge"}):
        guards += [Guard("filter", "FORWARD", ("-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT")),
                   Guard("nat", "PREROUTING", ("-i", bridge, *comment, "-j", "RETURN")),
                   Guard("nat", "POSTROUTING", ("-o", bridge, *comment, "-j", "RETURN"))]
    transit = plan.host_side.host_veth
    guards += [Guard("filter", "FORWARD", ("-i", transit, *comment, "-j", "ACCEPT")),
               Guard("filter", "FORWARD", ("-o", transit, *comment, "-j", "ACCEPT"))]
    return guards


def desired(plan: Plan, have: State) -> State:
    """Everything `ensure_host_side` puts in place; guards depend on the host (`have`)."""
    hs, ns = plan.host_side, plan.host_side.netns
    want = State(netns=True, ns_table=ns_table_comment(plan),
                 forwarding={HOST: True, ns: True}, brnf=have.brnf, guarded=have.guarded)
    want.links[(HOST, hs.host_veth)] = Link(str(hs.host_end))
    want.links[(ns, _transit_inside(plan))] = Link(str(hs.netns_end))
    want.links[(ns, "lo")] = Link()
    for net in served(plan):
        assert net.host_veth
        want.links[(ns, net.host_veth)] = Link(str(net.host_address))
        want.links[(HOST, net.host_veth + "p")] = Link(master=net.bridge)
    want.routes.add((ns, "default", str(hs.host_end.ip), _transit_inside(plan)))
    for cidr in hs.routes:
        want.routes.add((HOST, str(cidr), str(hs.netns_end.ip), hs.host_veth))
    want.host_rules = dict.fromkeys(host_rules(plan), 0)
    if have.brnf:
        want.guards = {g for g in guard_rules(plan) if (g.table, g.chain) in have.guarded}
    return want


def ip_command(where: str, *args: str) -> tuple[str, ...]:
    return ("ip", *args) if where == HOST else ("ip", "-n", where, *args)


def _link_fix(where: str, name: str, want: Link, have: Link | None, have_addrs: frozenset[str]) -> list[tuple[str, ...]]:
    fix: list[tuple[str, ...]] = []
    if want.master and (have is None or have.master != want.master):
        fix.append(ip_command(where, "link", "set", name, "master", want.master))
    if want.address and want.address not in have_addrs:
        fix.append(ip_command(where, "addr", "replace", want.address, "dev", name))
    if have is None or not have.up:
        fix.append(ip_command(where, "link", "set", name, "up"))
    return fix


def steps(plan: Plan, have: State) -> list[Step]:
    """The steps that take the host from `have` to `desired(plan, have)`; [] when all is in place."""
    hs, ns, inside = plan.host_side, plan.host_side.netns, _transit_inside(plan)
    want = desired(plan, have)
    out: list[Step] = []
    fixes = {key: _link_fix(*key, link, have.links.get(key), have.addresses.get(key, frozenset()))
             for key, link in want.links.items()}
    if not have.netns:
        out.append(Step(f"created network namespace {ns}", (("ip", "netns", "add", ns), *fixes.pop((ns, "lo")))))
    pairs = [(hs.host_veth, inside, f"transit {hs.host_end} - {hs.netns_end}")]
    pairs += [(n.host_veth + "p", n.host_veth, f"{n.name}: {n.host_address} on bridge {n.bridge}")
              for n in served(plan) if n.host_veth]
    for outer, inner, label in pairs:
        if (HOST, outer) not in have.links:  # a veth pair lives and dies as a pair
            add = ("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
            out.append(Step(f"created veth {outer}/{inner} ({label})",
                            (add, *fixes.pop((HOST, outer)), *fixes.pop((ns, inner)))))
    for (where, name), fix in fixes.items():
        if fix:
            out.append(Step(f"configured {name}" + (f" in {where}" if where else " on the host"), tuple(fix)))
    for route in sorted(want.routes - have.routes):
        where, dst, via, dev = route
        out.append(Step(f"route {dst} via {via}" + (f" in {where}" if where else " on the host"),
                        (ip_command(where, "route", "replace", dst, "via", via, "dev", dev),)))
    for where in want.forwarding:
        if not have.forwarding.get(where):
            prefix = ("ip", "netns", "exec", where) if where else ()
            out.append(Step(f"ip_forward on in {where or 'the host'}",
                            ((*prefix, "sysctl", "-qw", "net.ipv4.ip_forward=1"),)))
    if have.ns_table != want.ns_table:
        out.append(Step(f"nftables table ip {NS_TABLE} in {ns}", (("ip", "netns", "exec", ns, "nft", "-f", "-"),),
                        netns_ruleset(plan)))
    for (chain, comment), handle in have.host_rules.items():
        if (chain, comment) not in want.host_rules:
            out.append(Step(f"removed stale host rule {comment!r} (table ip {HOST_TABLE} {chain})",
                            (("nft", "delete", "rule", "ip", HOST_TABLE, chain, "handle", str(handle)),)))
    missing = [key for key in want.host_rules if key not in have.host_rules]
    if missing:
        what = {"postrouting": f"masquerade of {hs.transit}", "forward": "no routing in from our bridges"}
        out.append(Step(f"host table ip {HOST_TABLE}: " + "; ".join(what[chain] for chain, _ in missing),
                        (("nft", "-f", "-"),), host_script(plan, missing)))
    for table, chain, args in have.guard_lines:  # e.g. Docker restarted and inserted its rules above ours
        if (table, chain) in have.misplaced:
            out.append(Step(f"moved iptables guard first: -t {table} {shlex.join(args)}",
                            (("iptables", "-w", "-t", table, "-D", *args),)))
    # each is inserted at position 1, in reverse, so ours come first and in guard_rules' order
    for guard in reversed([g for g in guard_rules(plan) if g in want.guards - have.guards]):
        out.append(Step(f"iptables guard: -t {guard.table} {guard.chain} {shlex.join(guard.args)}",
                        (("iptables", "-w", "-t", guard.table, "-I", guard.chain, "1", *guard.args),)))
    return out


def removal_steps(plan: Plan, have: State) -> list[Step]:
    """Steps that remove exactly what `ensure_host_side` created for this instance."""
    hs, ns = plan.host_side, plan.host_side.netns
    out = [Step(f"removed iptables guard: -t {table} {shlex.join(args)}",
                (("iptables", "-w", "-t", table, "-D", *args),)) for table, _chain, args in have.guard_lines]
    out += [Step(f"removed host rule {comment!r} (table ip {HOST_TABLE} {chain})",
                 (("nft", "delete", "rule", "ip", HOST_TABLE, chain, "handle", str(handle)),))
            for (chain, comment), handle in have.host_rules.items()]
    for where, dst, via, dev in sorted(have.routes):
        if where == HOST and dev == hs.host_veth and via == str(hs.netns_end.ip):
            out.append(Step(f"removed host route {dst}", (("ip", "route", "del", dst, "via", via, "dev", dev),)))
    outer = [hs.host_veth] + [n.host_veth + "p" for n in served(plan) if n.host_veth]
    out += [Step(f"deleted veth {name}", (("ip", "link", "del", name),)) for name in outer if (HOST, name) in have.links]
    if have.netns:
        out.append(Step(f"deleted network namespace {ns}", (("ip", "netns", "del", ns),)))
    return out
