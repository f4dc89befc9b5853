"""Rules of a lab's `forwards:` and `moves:`, the relations the diagram draws across machines.
Pure: models in, problems out, each at the YAML line to change (like `hyperlab.core.validate`).
"""

from __future__ import annotations

from hyperlab.core.errors import Problem
from hyperlab.core.model import Lab, Topology
from hyperlab.core.wiring import ports, public_port, shared_port
from hyperlab.core.yamlsrc import Source


def _names(items: object) -> str:
    return ", ".join(sorted(items)) or "none"  # type: ignore[call-overload]


def relation_problems(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    return _forward_rules(lab, src, topo) + _move_rules(lab, src, topo)


def _step_problem(lab: Lab, src: Source, at: tuple[object, ...], step: str | None) -> list[Problem]:
    steps = {s.id for s in lab.steps}
    if step is None or step in steps:
        return []
    where = f"{at[0]}[{at[1]}].step"
    return [src.problem((*at, "step"), f"{where}: unknown step {step!r}; steps: {_names(steps)}")]


def _forward_rules(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    problems = []
    machines = ports(lab, topo)
    seen: dict[tuple[str, str, int], int] = {}
    for i, fwd in enumerate(lab.forwards):
        at = ("forwards", i)
        here = f"forwards[{i}]"
        problems += _step_problem(lab, src, at, fwd.step)
        for field in ("router", "to"):
            name = getattr(fwd, field)
            if name not in machines:
                problems.append(src.problem((*at, field), f"{here}.{field}: unknown node or guest {name!r}; "
                                                          f"nodes and guests: {_names(machines)}"))
        if fwd.router not in machines or fwd.to not in machines:
            continue
        if fwd.to == fwd.router:
            problems.append(src.problem((*at, "to"), f"{here}.to: {fwd.to} is the router itself; name the machine behind it"))
            continue
        router = machines[fwd.router]
        if public_port(router) is None:
            problems.append(src.problem((*at, "router"), f"{here}.router: {fwd.router} has no NIC on the public side (a nat, "
                                                         "route or bridge network, or an external switch) to forward from"))
        elif shared_port(router, machines[fwd.to]) is None:
            problems.append(src.problem((*at, "to"), f"{here}.to: {fwd.to} shares no network or switch with {fwd.router}; "
                                                     "a forward reaches a machine the router is wired to"))
        key = (fwd.router, fwd.protocol, fwd.port)
        if key in seen:
            problems.append(src.problem((*at, "port"), f"{here}.port: {fwd.protocol} {fwd.port} on {fwd.router} is already "
                                                       f"forwarded by forwards[{seen[key]}]"))
        seen.setdefault(key, i)
    return problems


def _move_rules(lab: Lab, src: Source, topo: Topology) -> list[Problem]:
    problems = []
    for i, move in enumerate(lab.moves):
        at = ("moves", i)
        here = f"moves[{i}]"
        problems += _step_problem(lab, src, at, move.step)
        guest = lab.guests.get(move.guest)
        if guest is None:
            problems.append(src.problem((*at, "guest"), f"{here}.guest: unknown guest {move.guest!r}; guests: {_names(lab.guests)}"))
        target = topo.nodes.get(move.to)
        if target is None:
            problems.append(src.problem((*at, "to"), f"{here}.to: unknown node {move.to!r}; nodes: {_names(topo.nodes)}"))
            continue
        if guest is not None and move.to == guest.host:
            what = "the node holding the share its disk moves to" if move.kind == "storage" else "another nested host"
            problems.append(src.problem((*at, "to"), f"{here}.to: {move.guest} already runs on {move.to}; name {what}"))
        elif move.kind != "storage" and not target.nested:
            problems.append(src.problem((*at, "to"), f"{here}.to: {move.to} is not a nested host, so {move.guest} cannot run "
                                                     "there; set `nested: true` on it in the topology"))
    return problems
