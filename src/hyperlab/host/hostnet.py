"""The host side of one lab instance: a network namespace that plays the lesson's host (VMware's NAT).

docs/design/instances.md explains why. For an instance this module keeps in place:

- namespace `plan.host_side.netns`, joined to the host by a transit veth pair (`host_veth` on the
  host, `host_veth + "n"` inside) with the namespace's default route via the host's end;
- for each network with a host address, a veth pair: `host_veth` (holding the address) inside the
  namespace, `host_veth + "p"` enslaved to the network's bridge;
- `table ip hyperlab` inside the namespace: nat networks masquerade out of the transit link,
  route networks forward both ways without NAT (the host routes their range to the namespace),
  isolated networks forward nothing;
- on the host: ip_forward, a route per routed network, and two rules per instance in
  `table ip hyperlab-host`, each commented with the instance: masquerade the transit /30 out of the
  host, and drop whatever the host would route in from our (address-less) bridges;
- the br_netfilter guard. Where `net.bridge.bridge-nf-call-iptables=1` (any Docker host; this
  one), frames bridged on our bridges pass the host's iptables: a FORWARD policy DROP drops them
  and a broad MASQUERADE rewrites them. An nftables table of our own cannot help: `accept` in one
  base chain does not stop another table's chain on the same hook (a DROP policy still drops), and
  a NAT rule in a later nat chain still binds. So the guards go into the host's own iptables
  chains, first: FORWARD `-i BR -o BR -j ACCEPT`, nat PREROUTING `-i BR -j RETURN`, nat
  POSTROUTING `-o BR -j RETURN` per bridge, plus FORWARD ACCEPT for the transit link, each tagged
  `hyperlab:<lab>.<instance>`. They are only added while br_netfilter is active and only into
  chains that already exist (with iptables-nft, listing creates nothing and we create no tables),
  so a host without iptables rules is left untouched. If a foreign rule lands above ours (Docker
  restarting), `ensure_host_side` moves ours first again: run it after the host's firewall changes.

The pure part (`netns_ruleset`, `host_rules`, `guard_rules`, `desired`, `steps`) lives in
`hyperlab.render.hostnet_rules`: commands from a Plan and an observed `State`. This module observes
the host and runs them.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hyperlab.core.plan import Plan
from hyperlab.render.hostnet_rules import (GUARD_CHAINS, HOST, HOST_TABLE, NS_TABLE, Link, State, Step,
                                           ip_command, guard_rules, removal_steps, served, steps, tag)

BRNF_SYSCTL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


class HostNetError(RuntimeError):
    """The host side cannot be set up (a missing bridge, a route taken by someone else)."""


class CommandFailed(HostNetError):
    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv, self.returncode, self.stderr = argv, returncode, stderr.strip()
        super().__init__(f"`{shlex.join(argv)}` failed ({returncode}): {self.stderr}")



def _run(argv: list[str] | tuple[str, ...], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise CommandFailed(list(argv), done.returncode, done.stderr or done.stdout)
    return done


def _json(argv: list[str]) -> list[dict[str, Any]]:
    out = _run(argv).stdout.strip()
    return json.loads(out) if out else []


def br_netfilter_active() -> bool:
    """True when frames bridged on this host pass iptables (br_netfilter loaded and enabled)."""
    try:
        return BRNF_SYSCTL.read_text().strip() == "1"
    except OSError:
        return False


def _guarded_chains() -> set[tuple[str, str]]:
    """The iptables chains that exist; with iptables-nft, a table nobody created holds no rules."""
    if shutil.which("iptables") is None:
        return set()
    nft_flavour = "nf_tables" in _run(["iptables", "-V"]).stdout
    chains = set()
    for table, chain in GUARD_CHAINS:
        if nft_flavour and _run(["nft", "list", "chain", "ip", table, chain], check=False).returncode != 0:
            continue
        chains.add((table, chain))
    return chains


def _links(where: str, state: State) -> None:
    for link in _json(list(ip_command(where, "-j", "addr", "show"))):
        key = (where, link["ifname"])
        state.links[key] = Link(master=link.get("master"), up="UP" in link.get("flags", []))
        state.addresses[key] = frozenset(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                                         if a.get("family") == "inet")


def _routes(where: str, state: State) -> None:
    for r in _json(list(ip_command(where, "-j", "route", "show"))):
        state.routes.add((where, r["dst"], r.get("gateway", ""), r.get("dev", "")))


def _host_table_rules() -> list[dict[str, Any]]:
    table = _run(["nft", "-j", "list", "table", "ip", HOST_TABLE], check=False)
    if table.returncode != 0:
        return []
    return [item["rule"] for item in json.loads(table.stdout)["nftables"] if "rule" in item]


def _iptables(plan: Plan, state: State) -> None:
    """Our tagged rules (and whether a foreign rule precedes them), and which guards are in place."""
    for table, chain in sorted(state.guarded):
        listing = _run(["iptables", "-w", "-t", table, "-S", chain]).stdout.splitlines()
        rules = [args[1:] for args in map(shlex.split, listing) if args[:1] == ["-A"]]
        ours = [any(a.startswith("hyperlab:") for a in args) for args in rules]
        first_foreign = ours.index(False) if False in ours else len(rules)
        for i, args in enumerate(rules):
            if tag(plan) in args:
                state.guard_lines.append((table, chain, args))
                if i > first_foreign:
                    state.misplaced.add((table, chain))
    for guard in guard_rules(plan):
        where = (guard.table, guard.chain)
        if where in state.guarded and where not in state.misplaced and _run(
                ["iptables", "-w", "-t", guard.table, "-C", guard.chain, *guard.args], check=False).returncode == 0:
            state.guards.add(guard)


def observe(plan: Plan) -> State:
    """What of this instance's host side is in place now (and the host facts the guards depend on)."""
    ns = plan.host_side.netns
    state = State(brnf=br_netfilter_active(), guarded=_guarded_chains())
    state.netns = ns in {n["name"] for n in _json(["ip", "-j", "netns", "list"])}
    _links(HOST, state)
    _routes(HOST, state)
    state.forwarding[HOST] = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    if state.netns:
        _links(ns, state)
        _routes(ns, state)
        fwd = _run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
        state.forwarding[ns] = fwd == "1"
        listing = _run(["ip", "netns", "exec", ns, "nft", "list", "table", "ip", NS_TABLE], check=False)
        if listing.returncode == 0:
            found = re.search(r'^\s*comment "([^"]*)"', listing.stdout, re.MULTILINE)
            state.ns_table = found.group(1) if found else ""
    for rule in _host_table_rules():
        if rule.get("comment", "").startswith(tag(plan) + " "):
            state.host_rules[(rule["chain"], rule["comment"])] = rule["handle"]
    _iptables(plan, state)
    return state


def _execute(todo: list[Step]) -> list[str]:
    for i, step in enumerate(todo):
        try:
            for argv in step.commands:
                _run(argv, step.stdin)
        except CommandFailed as exc:
            exc.add_note("done before the failure: " + ("; ".join(s.what for s in todo[:i]) or "nothing"))
            raise
    return [step.what for step in todo]


def _check(plan: Plan, have: State) -> None:
    for net in served(plan):
        if (HOST, net.bridge) not in have.links:
            raise HostNetError(f"bridge {net.bridge} of network {net.name} does not exist: start libvirt network "
                               f"{net.libvirt_name} first (`virsh net-start {net.libvirt_name}`)")
    for where, dst, via, dev in have.routes:
        if where == HOST and dst in {str(c) for c in plan.host_side.routes} and dev != plan.host_side.host_veth:
            raise HostNetError(f"the host already routes {dst} via {dev}: another instance with a routed network "
                               f"{dst} is running; stop it first")


def ensure_host_side(plan: Plan) -> list[str]:
    """Put the instance's host side in place; idempotent. Returns the changes made ([] if none)."""
    have = observe(plan)
    _check(plan, have)
    return _execute(steps(plan, have))


def remove_host_side(plan: Plan) -> list[str]:
    """Remove exactly what `ensure_host_side` created for this instance; [] if nothing was there."""
    have = observe(plan)
    done = _execute(removal_steps(plan, have))
    table = _run(["nft", "list", "table", "ip", HOST_TABLE], check=False)
    if table.returncode == 0 and not _host_table_rules():
        _run(["nft", "delete", "table", "ip", HOST_TABLE])  # the last instance's rules are gone
        done.append(f"deleted empty host table ip {HOST_TABLE}")
    return done


def host_side_present(plan: Plan) -> bool:
    """True when everything `ensure_host_side` would create is in place."""
    have = observe(plan)
    return have.netns and not steps(plan, have)
