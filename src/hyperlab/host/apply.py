"""Converge libvirt to a Plan, and take an instance down again.

Create what is missing, leave what matches, refuse what is foreign. Every check of ownership
happens before the first change, so a refused run changes nothing. The order of creation is
chosen so that a run killed at any point (SIGKILL included) leaves only objects that the next
run recognises as its own: the instance record is written before the pool is defined, and
domains and networks carry their owner in their XML from the moment they are defined.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import libvirt

from hyperlab.host.conn import ForeignObject, Owner, libvirt_boundary, lookup_domain, lookup_network, lookup_pool, owner_of
from hyperlab.host.instance_files import read_record, write_plan_record
from hyperlab.render.libvirt_xml import domain_xml, network_xml, pool_xml, volume_xml
from hyperlab.core.plan import Plan

Kind = Literal["pool", "volume", "network", "host-side", "domain"]
Progress = Callable[[str, str], None]  # (object, what happened)


class StaleInstance(Exception):
    """This instance exists but was deployed from another version of its topology."""


@dataclass(frozen=True)
class Change:
    kind: Kind
    name: str
    action: str  # created, started, kept, stopped, removed

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.action}"


def _no_progress(_name: str, _what: str) -> None:
    pass


# --------------------------------------------------------------------- ownership


def _mine(plan: Plan, owner: Owner | None) -> bool:
    return owner is not None and (owner.lab, owner.instance) == (plan.lab, plan.instance)


def domain_owners(conn: libvirt.virConnect, plan: Plan) -> dict[str, Owner | None]:
    """The owner recorded in each of the plan's domains that exists (None: no hyperlab metadata)."""
    owners = {}
    for node in plan.nodes:
        found = lookup_domain(conn, node.domain)
        if found is not None:
            owners[node.domain] = owner_of(found.XMLDesc(0))
    return owners


def ownership_problems(conn: libvirt.virConnect, plan: Plan, domains: dict[str, Owner | None]) -> list[str]:
    """Every wanted name that something else holds, one sentence each."""
    problems = []
    this = f"lab {plan.lab} instance {plan.instance}"

    def foreign(kind: str, name: str, owner: Owner | None) -> str:
        held = f"belongs to {owner}" if owner else "was not made by hyperlab"
        return (f"{kind} {name!r} already exists and {held}; {this} will not touch it. "
                f"Remove or rename it, or choose another --instance")

    pool = lookup_pool(conn, plan.pool)
    if pool is not None:
        owner = read_record(plan.pool_path) if _pool_path(pool) == plan.pool_path else None
        if not _mine(plan, owner):
            problems.append(foreign("storage pool", plan.pool, owner))
    for network in plan.networks:
        found = lookup_network(conn, network.libvirt_name)
        if found is not None and not _mine(plan, owner := owner_of(found.XMLDesc(0))):
            problems.append(foreign("network", network.libvirt_name, owner))
    for name, owner in domains.items():
        if not _mine(plan, owner):
            problems.append(foreign("domain", name, owner))
    taken = {n.name(): n for n in conn.listAllNetworks()}
    for network in plan.networks:
        if network.mode == "bridge":
            continue
        for other in taken.values():
            if other.name() != network.libvirt_name and _bridge_of(other) == network.bridge:
                problems.append(f"bridge {network.bridge} is already used by network {other.name()!r}; "
                                f"choose another --instance")
    return problems


def _pool_path(pool: libvirt.virStoragePool) -> Path | None:
    path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path")
    return Path(path) if path else None


def _bridge_of(network: libvirt.virNetwork) -> str | None:
    try:
        return network.bridgeName()
    except libvirt.libvirtError:
        return None


def _check_topology(plan: Plan, domains: dict[str, Owner | None]) -> None:
    if any(owner and owner.topology_hash != plan.topology_hash for owner in domains.values()):
        raise StaleInstance(
            f"{plan.lab} instance {plan.instance} was deployed from another version of topology {plan.topology}; "
            f"`lab down {plan.lab} --instance {plan.instance}` first, then `lab up` again")


# ----------------------------------------------------------------------- converge


def converge(conn: libvirt.virConnect, plan: Plan, progress: Progress = _no_progress,
             host_side: Callable[[Plan], list[str]] | None = None) -> list[Change]:
    """Make libvirt match the plan. `host_side` sets up the instance's namespace (None: skip)."""
    with libvirt_boundary(f"bringing up {plan.lab} instance {plan.instance}"):
        domains = domain_owners(conn, plan)
        problems = ownership_problems(conn, plan, domains)
        if problems:
            raise ForeignObject("\n".join(problems))
        _check_topology(plan, domains)
        changes = _pool(conn, plan, progress)
        changes += _networks(conn, plan, progress)
        if host_side is not None:
            made = host_side(plan)
            changes.append(Change("host-side", plan.host_side.netns, "created" if made else "kept"))
        changes += _volumes(conn, plan, progress)
        changes += _define_domains(conn, plan, progress)
        return changes


def _pool(conn: libvirt.virConnect, plan: Plan, progress: Progress) -> list[Change]:
    pool = lookup_pool(conn, plan.pool)
    if pool is None:
        write_plan_record(plan)  # first: a killed run leaves a folder the next run can claim
        pool = conn.storagePoolDefineXML(pool_xml(plan), 0)
        pool.setAutostart(1)
        pool.create(0)
        progress(plan.pool, "storage pool created")
        return [Change("pool", plan.pool, "created")]
    if not pool.isActive():
        pool.create(0)
        return [Change("pool", plan.pool, "started")]
    return [Change("pool", plan.pool, "kept")]


def _networks(conn: libvirt.virConnect, plan: Plan, progress: Progress) -> list[Change]:
    changes = []
    for network in plan.networks:
        found = lookup_network(conn, network.libvirt_name)
        if found is None:
            found = conn.networkDefineXML(network_xml(plan, network))
            found.setAutostart(1)
            found.create()
            progress(network.name, "network created")
            changes.append(Change("network", network.libvirt_name, "created"))
        elif not found.isActive():
            found.create()
            changes.append(Change("network", network.libvirt_name, "started"))
        else:
            changes.append(Change("network", network.libvirt_name, "kept"))
    return changes


def _volumes(conn: libvirt.virConnect, plan: Plan, progress: Progress) -> list[Change]:
    pool = conn.storagePoolLookupByName(plan.pool)
    pool.refresh(0)
    existing = set(pool.listVolumes())
    changes = []
    for node in plan.nodes:
        for volume in node.volumes:
            if volume.name in existing:
                changes.append(Change("volume", volume.name, "kept"))
                continue
            if volume.backing is not None:
                _check_golden(volume.backing, volume.capacity, volume.image or node.image)
            pool.createXML(volume_xml(volume), 0)
            progress(node.name, f"volume {volume.name} created")
            changes.append(Change("volume", volume.name, "created"))
    return changes


class GoldenImageProblem(Exception):
    """A golden image is missing or does not match what the plan expects."""


def _check_golden(path: Path, capacity: int, image: str) -> None:
    """An overlay smaller than its backing image would cut the guest's filesystem short."""
    if not path.exists():
        raise GoldenImageProblem(f"golden image {path} is missing; run `lab image build {image}`")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                                     capture_output=True, text=True, check=True).stdout)
    if info["virtual-size"] > capacity:
        raise GoldenImageProblem(f"golden image {path} is {info['virtual-size']} bytes, more than the {capacity} "
                                 f"hyperlab plans for {image}; rebuild it with `lab image build {image} --force`")


def _define_domains(conn: libvirt.virConnect, plan: Plan, progress: Progress) -> list[Change]:
    changes = []
    for node in plan.nodes:
        if lookup_domain(conn, node.domain) is None:
            conn.defineXML(domain_xml(plan, node))
            progress(node.name, "defined")
            changes.append(Change("domain", node.domain, "created"))
        else:
            changes.append(Change("domain", node.domain, "kept"))
    return changes


def start_domain(conn: libvirt.virConnect, name: str) -> bool:
    """Start a defined domain; False when it was already running."""
    with libvirt_boundary(f"starting {name}"):
        domain = conn.lookupByName(name)
        if domain.isActive():
            return False
        domain.create()
        return True


# ------------------------------------------------------------------------ teardown


def teardown(conn: libvirt.virConnect, plan: Plan, progress: Progress = _no_progress,
             host_side: Callable[[Plan], list[str]] | None = None) -> list[Change]:
    """Remove exactly what this instance owns; foreign objects with our names stay untouched."""
    with libvirt_boundary(f"removing {plan.lab} instance {plan.instance}"):
        changes = []
        for node in plan.nodes:
            domain = lookup_domain(conn, node.domain)
            if domain is None or not _mine(plan, owner_of(domain.XMLDesc(0))):
                continue
            remove_domain(domain)
            progress(node.name, "removed")
            changes.append(Change("domain", node.domain, "removed"))
        if host_side is not None and host_side(plan):
            changes.append(Change("host-side", plan.host_side.netns, "removed"))
        for network in plan.networks:
            found = lookup_network(conn, network.libvirt_name)
            if found is None or not _mine(plan, owner_of(found.XMLDesc(0))):
                continue
            if found.isActive():
                found.destroy()
            found.undefine()
            changes.append(Change("network", network.libvirt_name, "removed"))
        changes += _remove_pool(conn, plan)
        return changes


def deployed(conn: libvirt.virConnect, plan: Plan) -> bool:
    """The instance's pool and record exist here (it was brought up and not taken down)."""
    return lookup_pool(conn, plan.pool) is not None and read_record(plan.pool_path) is not None


def drop_node(conn: libvirt.virConnect, plan: Plan, name: str) -> None:
    """Remove a node's domain and its volumes (the overlays); `converge` makes them new from the golden image."""
    with libvirt_boundary(f"resetting {name} of {plan.lab} instance {plan.instance}"):
        node = plan.node(name)
        domain = lookup_domain(conn, node.domain)
        if domain is not None:
            remove_domain(domain)  # defined again by converge, with the same XML
        pool = conn.storagePoolLookupByName(plan.pool)
        pool.refresh(0)
        existing = set(pool.listVolumes())
        for volume in node.volumes:
            if volume.name in existing:
                pool.storageVolLookupByName(volume.name).delete(0)


def remove_domain(domain: libvirt.virDomain) -> None:
    if domain.isActive():
        domain.destroy()
    flags = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
             | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
             | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_TPM", 0))
    domain.undefineFlags(flags)


def _remove_pool(conn: libvirt.virConnect, plan: Plan) -> list[Change]:
    pool = lookup_pool(conn, plan.pool)
    if pool is not None:
        if _pool_path(pool) != plan.pool_path or not _mine(plan, read_record(plan.pool_path)):
            return []
        if pool.isActive():
            pool.refresh(0)
            for name in pool.listVolumes():
                pool.storageVolLookupByName(name).delete(0)
            pool.destroy()
        pool.undefine()
    elif not _mine(plan, read_record(plan.pool_path)):
        return []  # nothing of ours: a folder without our record is not ours to delete
    shutil.rmtree(plan.pool_path, ignore_errors=True)
    return [Change("pool", plan.pool, "removed")]
