"""A lab's topology as Graphviz DOT text: both levels of a nested lab in one picture. Pure and
deterministic (the same lab, language and highlight give the same bytes).

What is drawn, all from the lab's YAML:
- the topology's networks (CIDR, mode, the host side's address, DHCP) and its nodes, one box
  each with a row per NIC (network and address), wired to their networks;
- inside each nested node, a frame (a Graphviz cluster) holding the node itself, its virtual
  switches (kind, CIDR, uplink) and its guests, each guest with a row per NIC (switch and
  address), an external switch wired to its host's NIC on the uplink network;
- routers (role `nat-router`/`router`, or the `router:` of a forward) marked as such;
- `forwards:` as arrows through the router to the machine that serves them, labelled with the
  ports; the serving machine's box says where they arrive (the router's public address:port);
- `moves:` (live and storage migrations, replicas) as labelled dashed arrows from the guest to
  the node that receives it (into a nested node's frame).

An address the lab does not set says why: DHCP (the network's host side serves it), set by the
student, or no address. The layout is Graphviz's, steered: wires point away from the public side,
so the picture reads top-down from the host's networks through a router to the inner switches;
the nested nodes' frames stand one below the other, under everything outside them, because a
lesson page is narrow and tall (chapter-2 comes out about 550-600 px wide).

A step's diagram highlights the step's `nodes:` (a nested host's whole frame), the switches the
highlighted guests are wired to, and the forwards and moves whose `step:` is that step.

Running `dot` is not pure: `hyperlab.host.graphviz` does it and `diagram_style.finish_svg` makes
its SVG fit the page. The words are in `words/diagram.yaml`.
"""

from __future__ import annotations

import functools
from collections import deque
from pathlib import Path
from typing import Any

import yaml

from hyperlab.core.load import LoadedLab
from hyperlab.core.model import Forward, Lab, Topology
from hyperlab.core.wiring import Port, ports, public_port, shared_port
from hyperlab.render.diagram_style import C, FONT, h, q

LANGS = ("ko", "en")
ROUTER_ROLES = ("nat-router", "router")
FONT_SIZE = 12


@functools.cache
def words(lang: str) -> dict[str, Any]:
    data = yaml.safe_load((Path(__file__).with_name("words") / "diagram.yaml").read_text(encoding="utf-8"))
    if lang not in data:
        raise ValueError(f"no diagram words for language {lang!r}; languages: {', '.join(data)}")
    return dict(data[lang])


def diagram_title(lab_id: str, lang: str) -> str:
    return str(words(lang)["title"]).format(lab=lab_id)


def vertex(kind: str, *names: str) -> str:
    """The DOT id of a drawn thing: n-DC1, net-public, sw-SVR1-Internal, g-win2003-1."""
    return "-".join((kind, *names))


class _Picture:
    """The DOT statements of one diagram, collected in a fixed order."""

    def __init__(self, loaded: LoadedLab, lang: str, highlight: str | None) -> None:
        self.lab: Lab = loaded.lab
        self.topo: Topology = loaded.topology.topology
        self.w = words(lang)
        self.lang = lang
        self.ports = ports(self.lab, self.topo)
        self.step = highlight
        step = next((s for s in self.lab.steps if s.id == highlight), None) if highlight else None
        if highlight and step is None:
            raise ValueError(f"{self.lab.id} has no step {highlight!r}")
        self.on: set[str] = set(step.nodes) if step else set()
        roles = {name: node.roles for name, node in self.topo.nodes.items()} | {n: g.roles for n, g in self.lab.guests.items()}
        self.routers = {name for name, has in roles.items() if set(has) & set(ROUTER_ROLES)} | {f.router for f in self.lab.forwards}
        self.where: dict[str, str] = {}  # a machine's name, or HOST/SWITCH -> its vertex
        self.out: list[str] = []
        self.edges: list[tuple[str, str]] = []  # every edge drawn so far, tail to head (all point down)

    # ---------------------------------------------------------------- labels

    def address(self, port: Port, full: bool = True) -> str:
        """A NIC's address as the picture shows it: with its prefix length (guests) and who sets
        it when `full`; the bare address otherwise. No address says why."""
        if port.ip is None:
            return self.w["dhcp"] if port.dhcp else self.w["student"] if port.set_by == "student" else self.w["no_address"]
        if not full:
            return str(port.ip)
        text = str(self.lab.guests[port.machine].nics[port.index].ip) if port.machine in self.lab.guests else str(port.ip)
        return text + (f" ({self.w['student']})" if port.set_by == "student" else "")

    def roles(self, roles: list[str]) -> str:
        known = self.w["roles"]
        return ", ".join(known.get(r, r) for r in roles)

    def machine_label(self, name: str, lines: list[str], router: bool, on: bool) -> str:
        """A node's or guest's box: its name, its roles, then one row per NIC in two columns
        (network or switch, address), then where the forwards it serves come from."""
        head = C["on_fill"] if on else C["router_fill"] if router else C["head"]
        border = C["on"] if on else C["router"] if router else C["line"]
        rows = [f'<TR><TD ALIGN="LEFT" COLSPAN="2" BGCOLOR="{head}"><B>{h(name)}</B></TD></TR>']
        rows += [f'<TR><TD ALIGN="LEFT" COLSPAN="2"><FONT COLOR="{C["muted"]}">{h(line)}</FONT></TD></TR>' for line in lines if line]
        for port in self.ports[name]:
            rows.append(f'<TR><TD ALIGN="LEFT"><FONT COLOR="{C["muted"]}">{h(port.via)}</FONT></TD>'
                        f'<TD ALIGN="LEFT">{h(self.address(port))}</TD></TR>')
        for _, fwd, public in self.forwards():
            if fwd.to == name:
                text = self.w["forwarded"].format(public=f"{fwd.protocol.upper()} {self.address(public, False)}:{fwd.port}")
                rows.append(f'<TR><TD ALIGN="LEFT" COLSPAN="2"><FONT COLOR="{C["forward"]}">{h(text)}</FONT></TD></TR>')
        width = "3" if on else "2" if router else "1"
        return (f'<<TABLE BORDER="{width}" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" COLOR="{border}" '
                f'BGCOLOR="{C["box"]}">{"".join(rows)}</TABLE>>')

    # ---------------------------------------------------------------- statements

    def node(self, ident: str, label: str, css: str, **attrs: str) -> None:
        extra = "".join(f" {key}={value}" for key, value in attrs.items())
        self.out.append(f"{q(ident)} [id={q(ident)} class={q(css)} label={label}{extra}]")

    def edge(self, tail: str, head: str, css: str, ident: str, **attrs: str) -> None:
        extra = "".join(f" {key}={value}" for key, value in attrs.items())
        self.out.append(f"{q(tail)} -> {q(head)} [id={q(ident)} class={q(css)}{extra}]")
        self.edges.append((tail, head))

    def network(self, name: str) -> None:
        net = self.topo.networks[name]
        facts = [self.w["modes"][net.mode]]
        if net.host:
            facts.append(self.w["host_side"].format(ip=net.host))
        if net.dhcp:
            facts.append(self.w["dhcp_served"])
        if net.dns:
            facts.append(self.w["dns"].format(servers=", ".join(map(str, net.dns))))
        color = C[net.mode]
        label = (f'<<TABLE BORDER="2" CELLBORDER="0" CELLSPACING="0" CELLPADDING="4" STYLE="ROUNDED" COLOR="{color}" '
                 f'BGCOLOR="{C["box"]}"><TR><TD><FONT COLOR="{color}"><B>{h(name)}</B>  {h(str(net.cidr))}</FONT></TD></TR>'
                 f'<TR><TD><FONT COLOR="{C["muted"]}">{h(" · ".join(facts))}</FONT></TD></TR></TABLE>>')
        self.node(vertex("net", name), label, f"hl-net hl-mode-{net.mode}", shape="plain")

    def machine(self, name: str, ident: str, lines: list[str], css: str) -> None:
        router = name in self.routers
        on = name in self.on
        classes = css + (" hl-router" if router else "") + (" hl-on" if on else "")
        self.node(ident, self.machine_label(name, lines, router, on), classes, shape="plain")
        self.where[name] = ident

    def switch(self, host: str, name: str, touched: bool) -> str:
        sw = self.lab.switches[name]
        facts = [self.w["switch_kinds"][sw.kind]]
        if sw.cidr:
            facts.append(str(sw.cidr))
        if sw.uplink:
            facts.append(self.w["uplink"].format(network=sw.uplink))
        color = C["on"] if touched else C[sw.kind]
        ident = vertex("sw", host, name)
        label = (f'<<TABLE BORDER="{3 if touched else 1}" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2" STYLE="ROUNDED" '
                 f'COLOR="{color}" BGCOLOR="{C["on_fill"] if touched else C["box"]}"><TR><TD><FONT COLOR="{C[sw.kind]}">'
                 f'<B>{h(name)}</B></FONT></TD></TR><TR><TD><FONT COLOR="{C["muted"]}">{h(" · ".join(facts))}</FONT></TD></TR></TABLE>>')
        self.node(ident, label, f"hl-switch hl-kind-{sw.kind}" + (" hl-on" if touched else ""), shape="plain")
        return ident

    # ---------------------------------------------------------------- the picture

    def hosts(self) -> list[str]:
        return [n for n, node in self.topo.nodes.items() if node.nested]

    def node_lines(self, name: str) -> list[str]:
        node = self.topo.nodes[name]
        return [self.roles(node.roles) + (f" · {self.w['nested']}" if node.nested else "")]

    def guest_lines(self, name: str) -> list[str]:
        return [self.roles(self.lab.guests[name].roles)]

    def touched_switches(self) -> set[tuple[str, str]]:
        return {(self.lab.guests[p.machine].host, p.via) for name in self.on if name in self.lab.guests
                for p in self.ports[name]}

    def draw_machines(self) -> None:
        """Networks, plain nodes and one frame per nested node (the node, its switches, its guests)."""
        for name in self.topo.networks:
            self.network(name)
        for name in self.topo.nodes:
            if not self.topo.nodes[name].nested:
                self.machine(name, vertex("n", name), self.node_lines(name), "hl-node")
        touched = self.touched_switches()
        for host in self.hosts():
            on = host in self.on
            self.out.append(f"subgraph {q('cluster_' + host)} {{")
            self.out.append(f"id={q(vertex('c', host))} class={q('hl-host' + (' hl-on' if on else ''))} "
                            f"label=<{h(self.w['inside'].format(host=host))}> fontcolor={q(C['muted'])} "
                            f"style=\"filled,rounded\" fillcolor={q(C['host'])} color={q(C['on'] if on else C['host_line'])} "
                            f"penwidth={3 if on else 1}")
            self.machine(host, vertex("n", host), self.node_lines(host), "hl-node")
            for name, sw in self.lab.switches.items():
                if host in sw.hosts:
                    ident = self.switch(host, name, (host, name) in touched)
                    self.where[f"{host}/{name}"] = ident
            for name, guest in self.lab.guests.items():
                if guest.host == host:
                    self.machine(name, vertex("g", name), self.guest_lines(name), "hl-guest")
            self.out.append("}")

    def wires(self) -> list[tuple[str, str, str]]:
        """Every wire as (vertex, vertex, colour), undirected, in the YAML's order: a node's NIC to
        its network, a nested host to its external switches, a guest's NIC to its switch."""
        found = []
        for name in self.topo.nodes:
            for port in self.ports[name]:
                found.append((vertex("net", port.via), self.where[name], C[self.topo.networks[port.via].mode]))
        for host in self.hosts():
            for name, sw in self.lab.switches.items():
                if host in sw.hosts and sw.kind == "external" and any(p.via == sw.uplink for p in self.ports[host]):
                    found.append((self.where[host], self.where[f"{host}/{name}"], C["external"]))
        for name, guest in self.lab.guests.items():
            for port in self.ports[name]:
                found.append((self.where[f"{guest.host}/{port.via}"], self.where[name], C[self.lab.switches[port.via].kind]))
        return found

    def draw_wires(self) -> None:
        """Wires point away from the public side (breadth first from the nat, route and bridge
        networks, then the others), so that Graphviz ranks the picture from the outside in."""
        wires = self.wires()
        around: dict[str, list[str]] = {}
        for a, b, _ in wires:
            around.setdefault(a, []).append(b)
            around.setdefault(b, []).append(a)
        order: dict[str, int] = {}
        starts = [vertex("net", n) for n, net in self.topo.networks.items() if net.mode != "isolated"]
        starts += [vertex("net", n) for n in self.topo.networks] + list(self.where.values())
        for start in starts:
            if start in order:
                continue
            order[start] = len(order)
            todo = deque([start])
            while todo:
                for end in around.get(todo.popleft(), []):
                    if end not in order:
                        order[end] = len(order)
                        todo.append(end)
        hosts = {self.where[h] for h in self.hosts()}
        below: dict[str, set[str]] = {}
        for i, (a, b, color) in enumerate(wires):
            tail, head = (a, b) if order[a] <= order[b] else (b, a)
            below.setdefault(tail, set()).add(head)
            # a wire into a nested host's frame does not pull the frame sideways (the frames stack)
            weight = {"weight": "0"} if head in hosts else {}
            self.edge(tail, head, "hl-wire", f"w{i}", dir="none", color=q(color), penwidth="1.6", **weight)
        # What no wire holds (a guest without NICs, a switch no guest uses) hangs below its host,
        # one under the other. The nested hosts' frames stand below everything outside them, each
        # below the one before: the page is narrow and tall.
        framed = {v for host in self.hosts() for v in self.inside(host)}
        group = [v for v in self.where.values() if v not in framed] + [vertex("net", n) for n in self.topo.networks]
        for host in self.hosts():
            inside = self.inside(host)
            above = inside[0]
            for ident in (v for v in inside[1:] if v not in around):
                self.edge(above, ident, "hl-layout", f"l-{ident}", style="invis")
                below.setdefault(above, set()).add(ident)
                above = ident if ident.startswith("sw-") else above
            # below the lowest boxes of what stands above, and pulled towards none of them
            for ident in (v for v in group if not below.get(v, set()) & set(group)):
                self.edge(ident, inside[0], "hl-layout", f"s-{ident}", style="invis", weight="0")
            group = inside

    def inside(self, host: str) -> list[str]:
        """The vertices in a nested host's frame: the host itself, its switches, its guests."""
        return [self.where[host]] + [v for k, v in self.where.items() if k.startswith(host + "/") or
                                     (k in self.lab.guests and self.lab.guests[k].host == host)]

    def levels(self) -> dict[str, int]:
        """Each vertex's rank as Graphviz's ranking will roughly have it: the longest chain of
        edges drawn so far (all of which point downwards) that ends in it."""
        level = {v: 0 for pair in self.edges for v in pair}
        for _ in range(len(level)):
            changed = False
            for tail, head in self.edges:
                if level[head] < level[tail] + 1:
                    level[head] = level[tail] + 1
                    changed = True
            if not changed:
                break
        return level

    def forwards(self) -> list[tuple[int, Forward, Port]]:
        """(index, forward, the router's public NIC) for each forward the lab's rules let through."""
        found = []
        for i, fwd in enumerate(self.lab.forwards):
            public = public_port(self.ports[fwd.router])
            if public is not None and shared_port(self.ports[fwd.router], self.ports[fwd.to]) is not None:
                found.append((i, fwd, public))
        return found

    def draw_forwards(self) -> None:
        """An arrow from the router to the machine that serves the forward, with the ports; the
        target's box says where the connections come from (the router's public address)."""
        for i, fwd, _ in self.forwards():
            on = fwd.step is not None and fwd.step == self.step
            color = C["on"] if on else C["forward"]
            key = "forward" if fwd.target_port == fwd.port else "forward_ports"
            text = self.w[key].format(proto=fwd.protocol.upper(), port=fwd.port, to_port=fwd.target_port)
            self.edge(self.where[fwd.router], self.where[fwd.to], "hl-forward" + (" hl-on" if on else ""), f"f{i}",
                      color=q(color), penwidth="3" if on else "2", label=f'<<FONT COLOR="{color}">{h(text)}</FONT>>')

    def draw_moves(self) -> None:
        level = self.levels()
        for i, move in enumerate(self.lab.moves):
            on = move.step is not None and move.step == self.step
            color = C["on"] if on else C["replica" if move.kind == "replica" else "move"]
            what = self.w["storage_what" if move.kind == "storage" else "move_what"].format(guest=move.guest, to=move.to)
            attrs = {"style": "dashed", "color": q(color), "penwidth": "3" if on else "1.6", "weight": "0",
                     "label": lines([*self.w["moves"][move.kind], what], color)}
            tail, head = self.where[move.guest], self.where[move.to]
            nested = self.topo.nodes[move.to].nested
            frame = q("cluster_" + move.to) if nested else None
            if nested and level.get(head, 0) < level.get(tail, 0):
                # the frame is above the guest: come in at its lowest box, so the arrow stays short
                inside = self.inside(move.to)
                head = max(inside, key=lambda v: (level.get(v, 0), -inside.index(v)))
            if level.get(tail, 0) > level.get(head, 0):  # drawn upwards: Graphviz ranks by the edge, so turn it round
                tail, head = head, tail
                attrs["dir"] = "back"
                if frame:
                    attrs["ltail"] = frame
            elif frame:
                attrs["lhead"] = frame
            self.edge(tail, head, f"hl-move hl-move-{move.kind}" + (" hl-on" if on else ""), f"m{i}", **attrs)

    def dot(self) -> str:
        title = diagram_title(self.lab.id, self.lang)
        domain = self.topo.domain
        rows = [f'<TR><TD ALIGN="LEFT"><B>{h(title)}</B></TD></TR>']
        if domain:
            text = self.w["domain"].format(fqdn=domain.fqdn, netbios=domain.netbios)
            rows.append(f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="{FONT_SIZE}" COLOR="{C["muted"]}">{h(text)}</FONT></TD></TR>')
        head = [f"digraph {q(self.lab.id)} {{",
                f"graph [id={q('topology')} rankdir=TB compound=true newrank=true nodesep=0.2 ranksep=0.4 pad=0.2 "
                f"outputorder=edgesfirst bgcolor={q(C['bg'])} fontname={q(FONT)} fontsize={FONT_SIZE + 3} fontcolor={q(C['fg'])} "
                f"labelloc=t labeljust=l label=<<TABLE BORDER=\"0\" CELLSPACING=\"0\" CELLPADDING=\"1\">{''.join(rows)}</TABLE>>]",
                f"node [fontname={q(FONT)} fontsize={FONT_SIZE} fontcolor={q(C['fg'])}]",
                f"edge [fontname={q(FONT)} fontsize={FONT_SIZE - 1} fontcolor={q(C['fg'])} arrowsize=0.7]"]
        self.draw_machines()
        self.draw_wires()
        self.draw_forwards()
        self.draw_moves()
        return "\n".join(head + self.out + ["}"]) + "\n"


def lines(texts: list[str], color: str) -> str:
    """A label of several lines, a table row each: Graphviz's <BR/> spaces lines by its own font
    metrics, tighter than a browser's text boxes, which then touch."""
    rows = "".join(f'<TR><TD><FONT COLOR="{color}">{h(text)}</FONT></TD></TR>' for text in texts)
    return f'<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="1">{rows}</TABLE>>'


def diagram_dot(loaded: LoadedLab, lang: str = "ko", step: str | None = None) -> str:
    """The lab's diagram as DOT text in `lang`; with `step`, that step's nodes, switches,
    forwards and moves highlighted."""
    return _Picture(loaded, lang, step).dot()
