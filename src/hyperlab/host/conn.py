"""The libvirt boundary: connect, read ownership, and turn libvirtError into small exceptions.

Nothing above this module sees `libvirt.libvirtError`; only the CLI prints.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt

from hyperlab.core.model import DEFAULT_URI
from hyperlab.core.plan import METADATA_NS

T = TypeVar("T")


class HostProblem(Exception):
    """The host is missing something (libvirtd down, no permission): one line and the fix."""


class LibvirtRefused(HostProblem):
    """libvirt refused an operation (a bridge left behind, a full disk, a daemon gone): what was being
    done and libvirt's own words, in one line."""


@contextmanager
def libvirt_boundary(what: str) -> Iterator[None]:
    """Inside: libvirt's errors leave as LibvirtRefused("<what>: <libvirt's message>")."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise LibvirtRefused(f"{what}: libvirt: {exc.get_error_message()}") from None


class ForeignObject(Exception):
    """A wanted name is taken by an object this instance does not own."""


@dataclass(frozen=True)
class Owner:
    lab: str
    instance: str
    topology_hash: str

    def __str__(self) -> str:
        return f"lab {self.lab} instance {self.instance}"


def _silence(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr by default; we report them ourselves."""


libvirt.registerErrorHandler(_silence, None)


def connect(uri: str = DEFAULT_URI) -> libvirt.virConnect:
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HostProblem(
            f"cannot connect to libvirt at {uri}: {exc.get_error_message()}; "
            "start it with `bash scripts/setup-host.sh` (or `systemctl start libvirtd`), then `lab doctor`"
        ) from None


def owner_of(xml: str) -> Owner | None:
    """The hyperlab owner recorded in a domain's or network's XML, if any."""
    root = ET.fromstring(xml)
    element = root.find(f"metadata/{{{METADATA_NS}}}instance")
    if element is None:
        return None
    return Owner(element.get("lab", ""), element.get("instance", ""), element.get("topology-hash", ""))


def is_missing(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in (
        libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_ERR_NO_STORAGE_POOL,
        libvirt.VIR_ERR_NO_STORAGE_VOL,
    )


def _lookup(find: Callable[[str], T], name: str) -> T | None:
    """libvirt's lookups raise for a missing object; here missing is None, anything else raises."""
    try:
        return find(name)
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return None
        raise


def lookup_domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    return _lookup(conn.lookupByName, name)


def lookup_network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork | None:
    return _lookup(conn.networkLookupByName, name)


def lookup_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool | None:
    return _lookup(conn.storagePoolLookupByName, name)


def deployed_instances(conn: libvirt.virConnect, lab: str) -> list[str]:
    """The instances of `lab` that have a domain here, by the owner their XML records; sorted."""
    found = set()
    for domain in conn.listAllDomains(0):
        try:
            owner = owner_of(domain.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if is_missing(exc):
                continue  # removed while we listed
            raise
        if owner is not None and owner.lab == lab:
            found.add(owner.instance)
    return sorted(found)
