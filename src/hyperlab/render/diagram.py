"""Topology -> SVG: networks as horizontal buses, nodes as boxes below them, one wire per NIC
labelled with its address. Nested guests are listed inside their host's box. Pure and
deterministic, so the docs site can embed it and tests can compare it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hyperlab.core.load import LoadedLab
from hyperlab.core.model import format_size

SVG_NS = "http://www.w3.org/2000/svg"
NODE_W, NODE_GAP, BUS_GAP, MARGIN, LINE = 190, 40, 34, 24, 15
COLORS = {"nat": "#1e88e5", "isolated": "#8e24aa", "route": "#43a047", "bridge": "#f4511e"}


def _text(parent: ET.Element, x: float, y: float, text: str, **attrs: str) -> None:
    element = ET.SubElement(parent, "text", {"x": f"{x:g}", "y": f"{y:g}", **attrs})
    element.text = text


def diagram_svg(loaded: LoadedLab) -> str:
    topo, lab = loaded.topology.topology, loaded.lab
    nets = list(topo.networks)
    nodes = list(topo.nodes)
    guests_of = {name: [g for g, guest in lab.guests.items() if guest.host == name] for name in nodes}
    label_w = 230
    bus_top = MARGIN + 60  # below the title and the domain line, clear of the first network's label
    box_top = bus_top + BUS_GAP * len(nets) + 30
    box_lines = {n: 4 + len(guests_of[n]) + (1 if guests_of[n] else 0) for n in nodes}
    box_h = {n: 12 + LINE * lines for n, lines in box_lines.items()}
    width = MARGIN * 2 + label_w + len(nodes) * (NODE_W + NODE_GAP)
    height = box_top + max(box_h.values()) + MARGIN + 20

    svg = ET.Element("svg", {"xmlns": SVG_NS, "width": str(width), "height": str(height),
                             "viewBox": f"0 0 {width} {height}", "font-family": "sans-serif", "font-size": "12",
                             "role": "img", "aria-label": f"{lab.id} topology"})
    title = ET.SubElement(svg, "title")
    title.text = f"{lab.id}: {topo.name}"
    _text(svg, MARGIN, MARGIN + 8, f"{lab.id} — {topo.name}", **{"font-size": "15", "font-weight": "bold"})
    if topo.domain:
        _text(svg, MARGIN, MARGIN + 26, f"domain {topo.domain.fqdn} ({topo.domain.netbios})", fill="#555")

    bus_y = {}
    for i, name in enumerate(nets):
        net = topo.networks[name]
        y = bus_top + i * BUS_GAP
        bus_y[name] = y
        color = COLORS[net.mode]
        ET.SubElement(svg, "line", {"x1": str(MARGIN), "y1": str(y), "x2": str(width - MARGIN), "y2": str(y),
                                    "stroke": color, "stroke-width": "4", "class": f"network network-{name}"})
        host = f", host {net.host}" if net.host else ""
        _text(svg, MARGIN, y - 6, f"{name} {net.cidr} ({net.mode}{host})", fill=color, **{"font-weight": "bold"})

    for col, name in enumerate(nodes):
        node = topo.nodes[name]
        x = MARGIN + label_w + col * (NODE_W + NODE_GAP)
        group = ET.SubElement(svg, "g", {"class": "node", "id": f"node-{name}"})
        for i, nic in enumerate(node.nics):
            if nic.network not in bus_y:
                continue
            wx = x + 20 + i * 24
            y0 = bus_y[nic.network]
            ET.SubElement(group, "line", {"x1": str(wx), "y1": str(y0), "x2": str(wx), "y2": str(box_top),
                                          "stroke": COLORS[topo.networks[nic.network].mode], "stroke-width": "2"})
            ET.SubElement(group, "circle", {"cx": str(wx), "cy": str(y0), "r": "4", "fill": "#333"})
            label = str(nic.ip) if nic.ip else "?"
            if nic.set_by == "student":
                label += " (student)"
            _text(group, wx + 6, y0 + 14, label, **{"font-size": "10"})
        ET.SubElement(group, "rect", {"x": str(x), "y": str(box_top), "width": str(NODE_W), "height": str(box_h[name]),
                                      "rx": "6", "fill": "#fafafa", "stroke": "#333"})
        lines = [name, node.image, f"{node.vcpus} vCPU, {format_size(node.memory)}" + (", nested" if node.nested else ""),
                 ", ".join(node.roles) or "-"]
        if guests_of[name]:
            lines.append("guests:")
            lines += [f"  {g}" for g in guests_of[name]]
        for i, line in enumerate(lines):
            attrs = {"font-weight": "bold", "font-size": "14"} if i == 0 else {}
            _text(group, x + 10, box_top + 18 + i * LINE, line, **attrs)
    ET.indent(svg, space=" ")
    return ET.tostring(svg, encoding="unicode") + "\n"
