"""Rules that relate one part of a topology or lab to another. Pure: models in, problems out.

Each rule returns every problem it sees (not just the first), each placed at the YAML line
the user has to change.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from hyperlab.core.catalog import DATA_IMAGES, IMAGES, SYSTEM_IMAGES
from hyperlab.core.errors import Problem, display_path
from hyperlab.core.model import Lab, Topology
from hyperlab.core.limits import MAX_DISK, MAX_DISKS, MAX_MEMORY, MAX_NICS, MIN_DISK, MIN_MEMORY, NIC_FIRST_SLOT
from hyperlab.core.paths import inside
from hyperlab.core.units import format_size
from hyperlab.core.validate_relations import relation_problems
from hyperlab.core.yamlsrc import Source


def _names(items: object) -> str:
    return ", ".join(sorted(items)) or "none"  # type: ignore[call-overload]


def _address_problem(ip: IPv4Address, cidr: IPv4Network) -> str | None:
    if ip not in cidr:
        return f"{ip} is outside the network's {cidr}"
    if cidr.prefixlen < 31 and ip == cidr.network_address:
        return f"{ip} is the network address of {cidr}; use a host address"
    if cidr.prefixlen < 31 and ip == cidr.broadcast_address:
        return f"{ip} is the broadcast address of {cidr}; use a host address"
    return None


# 169.254.0.0/16 holds the host side's transit links; the others are not networks a guest can live on
_NOT_FOR_GUESTS = [(IPv4Network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"), (IPv4Network("127.0.0.0/8"), "loopback"),
                   (IPv4Network("169.254.0.0/16"), "link-local (hyperlab's transit links use it)"),
                   (IPv4Network("224.0.0.0/4"), "multicast"), (IPv4Network("240.0.0.0/4"), "reserved")]


def _network_class_problem(cidr: IPv4Network) -> str | None:
    if not 8 <= cidr.prefixlen <= 30:
        return f"{cidr} has a /{cidr.prefixlen} prefix; a lab network is /8 to /30"
    for reserved, what in _NOT_FOR_GUESTS:
        if cidr.overlaps(reserved):
            return f"{cidr} is {what}; use a private range such as 192.168.10.0/24"
    return None


def topology_problems(topo: Topology, src: Source) -> list[Problem]:
    problems: list[Problem] = []
    if src.path.absolute().parent.name == "topologies" and topo.name != src.path.stem:
        # labs find a topology by its file's name; its objects are named by `name`
        problems.append(src.problem(("name",), f"name {topo.name!r} differs from the file {src.path.name}; "
                                               f"a topology's name is its file's: write name: {src.path.stem}"))
    problems += _network_rules(topo, src)
    problems += _node_rules(topo, src)
    problems += _nic_rules(topo, src)
    return problems


def _network_rules(topo: Topology, src: Source) -> list[Problem]:
    problems = []
    seen: dict[IPv4Network, str] = {}
    for name, net in topo.networks.items():
        at = ("networks", name)
        for other_cidr, other in seen.items():
            if net.cidr.overlaps(other_cidr):
                problems.append(src.problem((*at, "cidr"), f"networks.{name}: {net.cidr} overlaps network {other!r} ({other_cidr}); give each network its own range"))
        seen[net.cidr] = name
        if why := _network_class_problem(net.cidr):
            problems.append(src.problem((*at, "cidr"), f"networks.{name}.cidr: {why}"))
        for k, server in enumerate(net.dns):
            if server.is_unspecified or server.is_multicast or server.is_reserved or server == IPv4Address("255.255.255.255"):
                problems.append(src.problem((*at, "dns", k), f"networks.{name}.dns: {server} cannot answer DNS; give a server's address"))
        for field in ("host", "gateway"):
            ip = getattr(net, field)
            if ip is not None and (why := _address_problem(ip, net.cidr)):
                problems.append(src.problem((*at, field), f"networks.{name}.{field}: {why}"))
        if net.mode == "bridge":
            if net.bridge is None:
                problems.append(src.problem((*at, "mode"), f"networks.{name}: mode bridge needs `bridge:` naming an existing host bridge such as br0"))
            if net.host is not None:
                problems.append(src.problem((*at, "host"), f"networks.{name}: a bridged network's host side is the real LAN; remove `host:`"))
        elif net.bridge is not None:
            problems.append(src.problem((*at, "bridge"), f"networks.{name}: `bridge:` is only for mode bridge (this network is {net.mode})"))
        if net.mode in ("nat", "route") and net.host is None:
            problems.append(src.problem((*at, "mode"), f"networks.{name}: mode {net.mode} needs `host:`, the address that forwards for the guests"))
        if net.dhcp and net.host is None:
            problems.append(src.problem((*at, "dhcp"), f"networks.{name}: DHCP is served from the host side; set `host:` or `dhcp: false`"))
    return problems


def _node_rules(topo: Topology, src: Source) -> list[Problem]:
    problems = []
    lower: dict[str, str] = {}
    for name, node in topo.nodes.items():
        at = ("nodes", name)
        if name.lower() in lower:
            problems.append(src.problem(at, f"nodes.{name}: same computer name as {lower[name.lower()]!r} (Windows names ignore case)", key=True))
        lower.setdefault(name.lower(), name)
        spec = SYSTEM_IMAGES.get(node.image)
        if spec is None:
            # An image from `defaults:` is named defaults.image, so every node gives the same line.
            where = ".".join(map(str, src.owner((*at, "image"))))
            problems.append(src.problem((*at, "image"), f"{where}: unknown image {node.image!r}; known images: {_names(SYSTEM_IMAGES)}"))
        elif node.nested and not spec.can_nest:
            hosts = _names(n for n, s in IMAGES.items() if s.can_nest)
            problems.append(src.problem((*at, "nested"), f"nodes.{name}: image {node.image!r} cannot host nested guests; use one of {hosts}"))
        if not MIN_MEMORY <= node.memory <= MAX_MEMORY:
            problems.append(src.problem((*at, "memory"), f"nodes.{name}.memory: {format_size(node.memory)} is outside "
                                                         f"{format_size(MIN_MEMORY)}..{format_size(MAX_MEMORY)}"))
        if len(node.disks) > MAX_DISKS:
            problems.append(src.problem((*at, "disks"), f"nodes.{name}.disks: {len(node.disks)} disks; a node has at most "
                                                        f"{MAX_DISKS} besides its system disk (vdb..vd{chr(ord('a') + MAX_DISKS)})"))
        if len(node.nics) > MAX_NICS:
            problems.append(src.problem((*at, "nics"), f"nodes.{name}.nics: {len(node.nics)} NICs; a node has at most {MAX_NICS} "
                                                       f"(PCI slots {NIC_FIRST_SLOT}..{NIC_FIRST_SLOT + MAX_NICS - 1}, the rest are for disks)"))
        for i, disk in enumerate(node.disks):
            disk_at = (*at, "disks", i)
            if disk.size is not None and not MIN_DISK <= disk.size <= MAX_DISK:
                problems.append(src.problem((*disk_at, "size"), f"nodes.{name}.disks[{i}].size: {format_size(disk.size)} is outside "
                                                                f"{format_size(MIN_DISK)}..{format_size(MAX_DISK)}"))
            if (disk.size is None) == (disk.image is None):
                problems.append(src.problem(disk_at, f"nodes.{name}.disks[{i}]: give `size:` (an empty disk) or `image:` "
                                                     "(an overlay of a store image), exactly one"))
            elif disk.image is not None and disk.image not in DATA_IMAGES:
                problems.append(src.problem((*disk_at, "image"), f"nodes.{name}.disks[{i}]: unknown data disk image "
                                                                 f"{disk.image!r}; known ones: {_names(DATA_IMAGES)}"))
        if node.secure_boot and node.firmware != "uefi":
            problems.append(src.problem((*at, "secure_boot"), f"nodes.{name}: secure boot needs `firmware: uefi`"))
        if "domain-controller" in node.roles and topo.domain is None:
            problems.append(src.problem((*at, "roles"), f"nodes.{name}: a domain controller needs a top-level `domain:` (fqdn, netbios)"))
        if node.channel in ("winrm", "ssh") and not any(nic.ip and nic.set_by == "lab" for nic in node.nics):
            problems.append(src.problem((*at, "channel"), f"nodes.{name}: channel {node.channel} needs a NIC whose address the lab sets (ip with set_by: lab)"))
        folder = src.path.parent
        for i, script in enumerate(node.first_boot):
            found = inside(folder, script)
            if not script.strip():
                problems.append(src.problem((*at, "first_boot", i), f"nodes.{name}.first_boot: an empty path; name a script"))
            elif Path(script).is_absolute():
                # It would exist on this machine only; the lab must carry its scripts.
                problems.append(src.problem((*at, "first_boot", i), f"nodes.{name}.first_boot: {script} must be a path relative to {src.path.name}"))
            elif found is None:
                problems.append(src.problem((*at, "first_boot", i), f"nodes.{name}.first_boot: {script} leaves {display_path(folder)} "
                                            "(symlinks followed); keep the script beside the topology"))
            elif not found.is_file():
                problems.append(src.problem((*at, "first_boot", i), f"nodes.{name}.first_boot: {script} not found next to {src.path.name}"))
    return problems


def _nic_rules(topo: Topology, src: Source) -> list[Problem]:
    problems = []
    ips: dict[tuple[str, IPv4Address], str] = {}
    macs: dict[str, str] = {}
    for name, node in topo.nodes.items():
        for i, nic in enumerate(node.nics):
            at = ("nodes", name, "nics", i)
            here = f"nodes.{name}.nics[{i}]"
            net = topo.networks.get(nic.network)
            if net is None:
                problems.append(src.problem((*at, "network"), f"{here}: unknown network {nic.network!r}; networks: {_names(topo.networks)}"))
            elif nic.ip is not None:
                if why := _address_problem(nic.ip, net.cidr):
                    problems.append(src.problem((*at, "ip"), f"{here}.ip: {why}"))
                elif nic.ip == net.host:
                    problems.append(src.problem((*at, "ip"), f"{here}.ip: {nic.ip} is the host side's address on {nic.network!r}; pick another"))
                elif (nic.network, nic.ip) in ips:
                    problems.append(src.problem((*at, "ip"), f"{here}.ip: {nic.ip} is already used by {ips[(nic.network, nic.ip)]}"))
                else:
                    ips[(nic.network, nic.ip)] = here
            if nic.mac is not None:
                if nic.mac in macs:
                    problems.append(src.problem((*at, "mac"), f"{here}.mac: {nic.mac} is already used by {macs[nic.mac]}"))
                macs.setdefault(nic.mac, here)
    return problems


# ------------------------------------------------------------------------ lab


# A variable becomes a shell variable in lab.env, which scripts source: a name is an identifier.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def lab_problems(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    problems: list[Problem] = []
    problems += _identity_rules(lab, src)
    problems += _action_rules(lab, src, topo)
    problems += _step_rules(lab, src, topo)
    problems += _switch_rules(lab, src, topo)
    problems += _guest_rules(lab, src, topo)
    problems += _lesson_rules(lab, src)
    problems += relation_problems(lab, src, topo)
    return problems


LESSON_LANGS = ("ko", "en")


def _identity_rules(lab: Lab, src: Source) -> list[Problem]:
    """A lab's id names every libvirt object it owns: labs/alpha/lab.yaml may not call itself
    chapter-1 and so plan (and own, and remove) chapter-1's instances."""
    problems = []
    folder = src.path.absolute().parent.name  # `lab validate lab.yaml` from inside the folder: parent is ''
    if src.path.name == "lab.yaml" and lab.id != folder:
        problems.append(src.problem(("id",), f"id {lab.id!r} differs from the lab's folder {folder!r}; "
                                             f"a lab's id is its folder's name: write id: {folder}"))
    for name in lab.variables:
        if not VARIABLE_NAME.fullmatch(name):
            problems.append(src.problem(("variables", name), f"variables: {name!r} is not a variable name; use letters, digits "
                                                             "and underscores, not starting with a digit (scripts read it from lab.env)",
                                        key=True))
    return problems


def _lesson_rules(lab: Lab, src: Source) -> list[Problem]:
    """lessons/NAME.LANG.md beside lab.yaml (the docs render them): NAME is `intro` or a step id, LANG ko or en.

    A lesson whose step was renamed or removed would otherwise vanish from the page without a word,
    and one written in one language only would be missing from the other language's page.
    """
    problems: list[Problem] = []
    names = {"intro", *(step.id for step in lab.steps)}
    found: dict[tuple[str, str], Path] = {}
    for path in sorted((src.path.parent / "lessons").glob("*.md")):
        name, _, lang = path.name.removesuffix(".md").rpartition(".")
        where = display_path(path)
        if inside(src.path.parent, f"lessons/{path.name}") is None:
            problems.append(Problem(where, 1, 1, f"{path.name} is a link that leaves the lab folder; copy the lesson into lessons/"))
            found[(name, lang)] = path  # said once: not also "has no version" for its other language
        elif lang not in LESSON_LANGS or not name:
            problems.append(Problem(where, 1, 1, f"{path.name} is not a lesson name: name it STEP-ID.LANG.md (or intro.LANG.md), LANG being {' or '.join(LESSON_LANGS)}"))
        elif name not in names:
            problems.append(Problem(where, 1, 1, f"lesson for unknown step {name!r}; steps of {lab.id}: {_names(names - {'intro'})} "
                                                 "(or intro); rename the file to its step's id"))
        else:
            found[(name, lang)] = path
    for (name, lang), path in found.items():
        for other in LESSON_LANGS:
            if (name, other) not in found:
                problems.append(Problem(display_path(path), 1, 1, f"lesson {name!r} has no {other} version; write {name}.{other}.md beside it"))
    return problems


def _file_problem(src: Source, loc: tuple[object, ...], where: str, script: str) -> list[Problem]:
    path = src.path.parent / script
    if Path(script).is_absolute() or ".." in Path(script).parts:
        return [src.problem(loc, f"{where}: {script} must be a path inside the lab folder")]
    if path.exists() and inside(src.path.parent, script) is None:
        return [src.problem(loc, f"{where}: {script} is a link that leaves the lab folder; copy the script into the lab")]
    if not path.is_file():
        # Show the path it was looked for at: relative to the lab folder is the usual surprise.
        return [src.problem(loc, f"{where}: {script} not found (no file {display_path(path)})")]
    return []


def _twice(nodes: list[str]) -> list[int]:
    """Positions of nodes named again in one action (it would run twice at once on that node)."""
    return [j for j, node in enumerate(nodes) if node in nodes[:j]]


def _action_rules(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    problems = []
    for field, actions in (("start", lab.start), ("personalize", lab.personalize)):
        for i, action in enumerate(actions):
            for j in _twice(action.nodes):
                problems.append(src.problem((field, i, "nodes", j), f"{field}[{i}].nodes: {action.nodes[j]} is named twice; name each node once"))
            for j, node in enumerate(action.nodes):
                if node not in topo.nodes:
                    problems.append(src.problem((field, i, "nodes", j), f"{field}[{i}].nodes: unknown node {node!r}; nodes of {topo.name}: {_names(topo.nodes)}"))
            problems += _file_problem(src, (field, i, "run"), f"{field}[{i}].run", action.run)
    return problems


def _step_rules(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    problems = []
    index: dict[str, int] = {}
    for i, step in enumerate(lab.steps):
        if step.id in index:
            problems.append(src.problem(("steps", i, "id"), f"steps[{i}].id: step {step.id!r} is already defined as steps[{index[step.id]}]"))
        index.setdefault(step.id, i)
    names = set(topo.nodes) | set(lab.guests)
    for i, step in enumerate(lab.steps):
        for j, req in enumerate(step.requires):
            if req not in index:
                problems.append(src.problem(("steps", i, "requires", j), f"steps[{i}] ({step.id}) requires unknown step {req!r}; steps: {_names(index)}"))
        for j, node in enumerate(step.nodes):
            if node not in names:
                problems.append(src.problem(("steps", i, "nodes", j), f"steps[{i}] ({step.id}): unknown node or guest {node!r}; nodes and guests: {_names(names)}"))
        for k, action in enumerate(step.solution):
            where = f"steps[{i}].solution[{k}]"
            for j in _twice(action.nodes):
                problems.append(src.problem(("steps", i, "solution", k, "nodes", j), f"{where}.nodes: {action.nodes[j]} is named twice; "
                                                                                     "name each node once"))
            for j, node in enumerate(action.nodes):
                if node not in topo.nodes:
                    problems.append(src.problem(("steps", i, "solution", k, "nodes", j), f"{where}.nodes: unknown node {node!r}; nodes of {topo.name}: {_names(topo.nodes)}"))
            problems += _file_problem(src, ("steps", i, "solution", k, "run"), f"{where}.run", action.run)
    if not problems:
        problems += _cycle_problems(lab, src, index)
    return problems


def _cycle_problems(lab: Lab, src: Source, index: dict[str, int]) -> list[Problem]:
    """Depth-first search without recursion (a lab may chain a thousand steps); each cycle is
    reported once, at the `requires` entry that closes it."""
    state: dict[str, str] = {}
    problems = []
    for start in lab.steps:
        if start.id in state:
            continue
        state[start.id] = "active"
        path = [start.id]
        todo = [iter(start.requires)]
        while todo:
            req = next(todo[-1], None)
            step_id = path[-1]
            if req is None:
                state[step_id] = "done"
                path.pop()
                todo.pop()
            elif state.get(req) == "active":
                cycle = path[path.index(req):]
                if len(cycle) > 8:  # a long chain: its ends say where to look
                    cycle = [*cycle[:3], f"... {len(cycle) - 6} more ...", *cycle[-3:]]
                i = index[step_id]
                j = lab.steps[i].requires.index(req)
                problems.append(src.problem(("steps", i, "requires", j), f"steps[{i}] ({step_id}): requires cycle {' -> '.join(cycle)} -> {req}; "
                                                                          "a step cannot depend on itself, even indirectly"))
            elif req not in state:
                state[req] = "active"
                path.append(req)
                todo.append(iter(lab.steps[index[req]].requires))
    return problems


def _switch_rules(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    problems = []
    for name, switch in lab.switches.items():
        at = ("switches", name)
        for j, host in enumerate(switch.hosts):
            node = topo.nodes.get(host)
            if node is None:
                problems.append(src.problem((*at, "hosts", j), f"switches.{name}: unknown host {host!r}; nodes: {_names(topo.nodes)}"))
            elif not node.nested:
                problems.append(src.problem((*at, "hosts", j), f"switches.{name}: {host} is not a nested host; set `nested: true` on it in the topology"))
            elif switch.uplink in topo.networks and not any(nic.network == switch.uplink for nic in node.nics):
                # (an unknown uplink is reported once, at `uplink:`, below)
                problems.append(src.problem((*at, "hosts", j), f"switches.{name}: {host} has no NIC on {switch.uplink!r} to bridge to"))
        if switch.kind == "external":
            if switch.uplink is None:
                problems.append(src.problem((*at, "kind"), f"switches.{name}: an external switch needs `uplink:`, the topology network it bridges to"))
            elif switch.uplink not in topo.networks:
                problems.append(src.problem((*at, "uplink"), f"switches.{name}.uplink: unknown network {switch.uplink!r}; networks: {_names(topo.networks)}"))
            if switch.cidr is not None:
                problems.append(src.problem((*at, "cidr"), f"switches.{name}: an external switch takes its uplink's addresses; remove `cidr:`"))
        elif switch.uplink is not None:
            problems.append(src.problem((*at, "uplink"), f"switches.{name}: only external switches have an uplink"))
        for other_name, other in list(lab.switches.items())[: list(lab.switches).index(name)]:
            shared = set(switch.hosts) & set(other.hosts)
            if switch.cidr is not None and other.cidr is not None and shared and switch.cidr.overlaps(other.cidr):
                problems.append(src.problem((*at, "cidr"), f"switches.{name}: {switch.cidr} overlaps switch {other_name!r} "
                                                           f"({other.cidr}) on {_names(shared)}; give each switch its own range"))
        if switch.cidr is not None and (why := _network_class_problem(switch.cidr)):
            problems.append(src.problem((*at, "cidr"), f"switches.{name}.cidr: {why}"))
    return problems


def _switch_cidr(lab: Lab, topo: Topology, name: str) -> IPv4Network | None:
    switch = lab.switches[name]
    if switch.kind == "external" and switch.uplink in topo.networks:
        return topo.networks[switch.uplink].cidr
    return switch.cidr


_VHD_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.vhdx?")


def _guest_image_problem(image: str, host_image: str) -> str | None:
    """A Linux host's guests boot a store image (delivered by `lab up`); a Windows host's are a
    VHD(X) file on its data disk, named without a folder."""
    host = IMAGES.get(host_image)
    if host is None:
        return None  # the host's own image is reported in the topology
    if host.os == "linux":
        bootable = sorted(n for n, s in SYSTEM_IMAGES.items() if s.os == "linux")
        return None if image in bootable else f"unknown image {image!r} for a guest of a Linux host; images: {', '.join(bootable)}"
    if not _VHD_FILE.fullmatch(image):
        return f"{image!r} is not a VHD or VHDX file name (such as win2003.vhdx, no folder) on the host's data disk"
    return None


def _guest_rules(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    problems = []
    used: dict[tuple[str, IPv4Address], str] = {}
    # (`ext` and `node_nic`, not `switch` and `nic`: those names have other types below)
    for switch_name, ext in lab.switches.items():
        if ext.kind == "external" and ext.uplink:
            for node_name, node in topo.nodes.items():
                for node_nic in node.nics:
                    if node_nic.network == ext.uplink and node_nic.ip is not None:
                        used[(switch_name, node_nic.ip)] = f"topology node {node_name}"
            uplink = topo.networks.get(ext.uplink)
            if uplink is not None and uplink.host is not None:
                used[(switch_name, uplink.host)] = f"the host side of network {ext.uplink!r}"
    # Guests are computers too: their names must differ from every other name ignoring case.
    taken = {node.lower(): ("topology node", node) for node in topo.nodes}
    for name, guest in lab.guests.items():
        at = ("guests", name)
        if name.lower() in taken:
            what, other = taken[name.lower()]
            same = "the same name as" if other == name else "the same computer name (Windows ignores case) as"
            problems.append(src.problem(at, f"guests.{name}: {same} {what} {other!r}; rename the guest", key=True))
        taken.setdefault(name.lower(), ("guest", name))
        host = topo.nodes.get(guest.host)
        if host is not None and guest.image is not None and (why := _guest_image_problem(guest.image, host.image)):
            problems.append(src.problem((*at, "image"), f"guests.{name}.image: {why}"))
        if host is None:
            problems.append(src.problem((*at, "host"), f"guests.{name}.host: unknown node {guest.host!r}; nodes: {_names(topo.nodes)}"))
        elif not host.nested:
            problems.append(src.problem((*at, "host"), f"guests.{name}.host: {guest.host} is not a nested host; set `nested: true` on it in the topology"))
        for i, nic in enumerate(guest.nics):
            loc = (*at, "nics", i)
            here = f"guests.{name}.nics[{i}]"
            switch = lab.switches.get(nic.switch)
            if switch is None:
                problems.append(src.problem((*loc, "switch"), f"{here}: unknown switch {nic.switch!r}; switches: {_names(lab.switches)}"))
                continue
            if host is not None and host.nested and guest.host not in switch.hosts:  # else reported at `host:`
                problems.append(src.problem((*loc, "switch"), f"{here}: switch {nic.switch!r} is not on {guest.host} (hosts: {_names(switch.hosts)})"))
            cidr = _switch_cidr(lab, topo, nic.switch)
            if nic.ip is None:
                continue
            if cidr is None and switch.kind == "internal":
                problems.append(src.problem((*loc, "ip"), f"{here}.ip: switch {nic.switch!r} has no `cidr:` to check addresses against; add one to the switch"))
            elif cidr is None:
                pass  # private: any addresses; external without a known uplink: reported at the switch
            elif nic.ip.network.prefixlen == 32 and nic.ip.ip in cidr:
                # `ip: 10.1.0.10` reads as /32; the guest needs the switch's prefix length.
                problems.append(src.problem((*loc, "ip"), f"{here}.ip: {nic.ip.ip} needs its prefix length: write {nic.ip.ip}/{cidr.prefixlen}"))
            elif nic.ip.network != cidr or (why := _address_problem(nic.ip.ip, cidr)):
                detail = why if nic.ip.network == cidr else f"{nic.ip} is not in the switch's {cidr}"
                problems.append(src.problem((*loc, "ip"), f"{here}.ip: {detail}"))
            key = (nic.switch, nic.ip.ip)
            if key in used:
                problems.append(src.problem((*loc, "ip"), f"{here}.ip: {nic.ip.ip} is already used by {used[key]}"))
            used.setdefault(key, here)
            if nic.gateway is not None and nic.gateway not in IPv4Interface(nic.ip).network:
                problems.append(src.problem((*loc, "gateway"), f"{here}.gateway: {nic.gateway} is outside {nic.ip.network}"))
            elif nic.gateway is not None and nic.gateway == nic.ip.ip:
                problems.append(src.problem((*loc, "gateway"), f"{here}.gateway: {nic.gateway} is the guest's own address; "
                                                               "a gateway is another computer"))
    return problems
