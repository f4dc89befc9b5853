"""Checkpoints in libvirt: internal snapshots, disk and memory, of an instance's running nodes.

A checkpoint of several nodes is one cut in time: every node is paused, each is snapshotted
(in parallel), and then all run on together; a restore reverts them all paused and resumes them
together, so that what the nodes said to each other matches on both sides. A restored guest's
clock stands where it stood when the checkpoint was taken: it is set to the host's time through
the guest agent (Kerberos tickets and replica timers need it right).
The names and rules are `hyperlab.core.checkpoints`.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from hyperlab.core.checkpoints import checkpoint_of, snapshot_name
from hyperlab.core.fanout import fan_out
from hyperlab.core.plan import Plan
from hyperlab.host.conn import lookup_domain
from hyperlab.render.libvirt_xml import snapshot_xml

CLOCK_TRIES = 15  # seconds for the agent to answer after a restore


class CheckpointError(Exception):
    """A checkpoint cannot be taken or restored; the message says which node and why."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    nodes: tuple[str, ...]
    created: float  # the newest of its nodes' snapshots, seconds since the epoch


def _running(conn: libvirt.virConnect, plan: Plan, names: list[str]) -> list[libvirt.virDomain]:
    domains = []
    for name in names:
        domain = lookup_domain(conn, plan.node(name).domain)
        if domain is None or not domain.isActive():
            raise CheckpointError(f"{name} is not running: `lab up {plan.lab}` first")
        domains.append(domain)
    return domains


def checkpoints(conn: libvirt.virConnect, plan: Plan) -> list[Checkpoint]:
    """The instance's checkpoints, oldest first, each with the nodes that have it."""
    found: dict[str, tuple[list[str], float]] = {}
    for node in plan.nodes:
        domain = lookup_domain(conn, node.domain)
        if domain is None:
            continue
        for snapshot in domain.listAllSnapshots(0):
            name = checkpoint_of(snapshot.getName())
            if name is None:
                continue
            created = float(ET.fromstring(snapshot.getXMLDesc(0)).findtext("creationTime") or 0)
            nodes, newest = found.setdefault(name, ([], 0.0))
            nodes.append(node.name)
            found[name] = (nodes, max(newest, created))
    return sorted((Checkpoint(name, tuple(nodes), created) for name, (nodes, created) in found.items()),
                  key=lambda c: (c.created, c.name))


def has(conn: libvirt.virConnect, plan: Plan, name: str, checkpoint: str) -> bool:
    domain = lookup_domain(conn, plan.node(name).domain)
    if domain is None:
        return False
    try:
        domain.snapshotLookupByName(snapshot_name(checkpoint), 0)
        return True
    except libvirt.libvirtError:
        return False


def save(conn: libvirt.virConnect, plan: Plan, names: list[str], checkpoint: str) -> None:
    """Checkpoint `names` at one moment; a checkpoint of that name is replaced."""
    domains = _running(conn, plan, names)
    paused: list[libvirt.virDomain] = []
    xml = snapshot_xml(snapshot_name(checkpoint), f"hyperlab checkpoint {checkpoint} of {plan.lab} / {plan.instance}")
    try:
        for domain in domains:
            domain.suspend()
            paused.append(domain)

        def one(domain: libvirt.virDomain) -> None:
            with contextlib.suppress(libvirt.libvirtError):  # none of that name yet
                domain.snapshotLookupByName(snapshot_name(checkpoint), 0).delete(0)
            domain.snapshotCreateXML(xml, 0)

        fan_out(one, domains)
    except libvirt.libvirtError as exc:
        raise CheckpointError(f"checkpoint {checkpoint}: libvirt refused: {str(exc).strip()}") from None
    finally:
        for domain in paused:
            with contextlib.suppress(libvirt.libvirtError):
                domain.resume()
    fan_out(set_clock, domains)


def restore(conn: libvirt.virConnect, plan: Plan, names: list[str], checkpoint: str) -> list[str]:
    """Revert `names` to `checkpoint`, running; returns the nodes whose clock could not be set."""
    snapshots = []
    for name in names:
        domain = lookup_domain(conn, plan.node(name).domain)
        try:
            if domain is None:
                raise libvirt.libvirtError("no such domain")
            snapshots.append((domain, domain.snapshotLookupByName(snapshot_name(checkpoint), 0)))
        except libvirt.libvirtError:
            raise CheckpointError(f"{name} has no checkpoint {checkpoint!r}") from None
    try:
        fan_out(lambda pair: pair[0].revertToSnapshot(pair[1], libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED), snapshots)
    except libvirt.libvirtError as exc:
        raise CheckpointError(f"restoring checkpoint {checkpoint}: {str(exc).strip()}") from None
    for domain, _snapshot in snapshots:
        domain.resume()
    clocks = fan_out(set_clock, [domain for domain, _ in snapshots])
    return [name for name, ok in zip(names, clocks) if not ok]


def delete(conn: libvirt.virConnect, plan: Plan, checkpoint: str) -> list[str]:
    """Delete `checkpoint` from every node that has it; returns those nodes."""
    deleted = []
    for node in plan.nodes:
        domain = lookup_domain(conn, node.domain)
        if domain is None:
            continue
        try:
            domain.snapshotLookupByName(snapshot_name(checkpoint), 0).delete(0)
            deleted.append(node.name)
        except libvirt.libvirtError:
            continue
    return deleted


def set_clock(domain: libvirt.virDomain, now: Callable[[], float] = time.time,
              sleep: Callable[[float], None] = time.sleep) -> bool:
    """The guest's clock set to the host's through its agent; False when the agent never answered."""
    for _ in range(CLOCK_TRIES):
        t = now()
        try:
            domain.setTime({"seconds": int(t), "nseconds": int((t % 1) * 1e9)}, 0)
            return True
        except libvirt.libvirtError:
            sleep(1.0)
    return False
