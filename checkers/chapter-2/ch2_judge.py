"""chapter-2: the pure judging logic of the checkers, shared with the unit tests.

Each function takes what a checker's PowerShell printed (parsed JSON, see `ps/*.ps1`) and the
lab's expectations, and returns the list of problems in words: empty means the state is right.
No I/O here, so `tests/unit/test_chapter2_judge.py` runs every function against recorded outputs
written from Microsoft's documented property names and enum values.

NOT run against Windows: the JSON shapes are what the scripts in `ps/` print by construction
(every enum turned into a string in the query), checked only against documentation.
"""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

Problems = list[str]


def as_list(value: Any) -> list[Any]:
    """Windows PowerShell 5.1 turns a one-element array into the element and an empty one into
    null in some paths; the scripts wrap arrays in @(), this keeps the judges safe anyway."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def short(name: str) -> str:
    """'SVR1.kosa.vm' -> 'svr1': Hyper-V and AD print either form."""
    return name.split(".", 1)[0].lower()


def mac(text: str) -> str:
    """'00-15-5D-01-02-03' (Get-NetNeighbor) and '00155D010203' (Get-VMNetworkAdapter) -> one form."""
    return "".join(c for c in text.lower() if c in "0123456789abcdef")


# ------------------------------------------------------------------ domain-join


def judge_membership(data: dict[str, Any], host: str, fqdn: str) -> Problems:
    """Win32_ComputerSystem on a host: member of `fqdn`, with a working secure channel."""
    if not data.get("PartOfDomain"):
        return [f"{host} is not in a domain (workgroup {data.get('Domain')!r}); join {fqdn}"]
    if str(data.get("Domain", "")).lower() != fqdn.lower():
        return [f"{host} is a member of {data.get('Domain')!r}, expected {fqdn}"]
    if not data.get("SecureChannel"):
        return [f"{host}'s secure channel to {fqdn} is broken (Test-ComputerSecureChannel is False)"]
    return []


def judge_ad_computers(data: dict[str, Any], names: list[str], fqdn: str) -> Problems:
    """Get-ADComputer on DC1: an enabled account per host, with its DNS name in the domain."""
    found = {short(c["Name"]): c for c in as_list(data.get("Computers"))}
    problems = []
    for name in names:
        account = found.get(name.lower())
        if account is None:
            problems.append(f"DC1 has no computer account {name} in {fqdn}")
        elif not account.get("Enabled"):
            problems.append(f"the computer account {name} is disabled")
        elif str(account.get("DNSHostName", "")).lower() != f"{name}.{fqdn}".lower():
            problems.append(f"{name}'s DNSHostName is {account.get('DNSHostName')!r}, expected {name.lower()}.{fqdn}")
    return problems


# --------------------------------------------------------------------- switches

SWITCH_TYPES = {"external": "External", "internal": "Internal", "private": "Private"}


def judge_switches(data: dict[str, Any], host: str, expected: dict[str, str], host_ip: str) -> Problems:
    """Get-VMSwitch on a host: every switch of lab.yaml with its type; the External one bound to a
    NIC and carrying the host's own address on its management vNIC (the seed sets it there)."""
    switches = {s["Name"].lower(): s for s in as_list(data.get("Switches"))}
    problems = []
    for name, kind in expected.items():
        switch = switches.get(name.lower())
        want = SWITCH_TYPES[kind]
        if switch is None:
            problems.append(f"{host} has no virtual switch {name} ({want})")
            continue
        if switch.get("SwitchType") != want:
            problems.append(f"{host}'s switch {name} is {switch.get('SwitchType')}, expected {want}")
            continue
        if want == "External":
            if not switch.get("NetAdapterInterfaceDescription"):
                problems.append(f"{host}'s switch {name} is bound to no physical NIC")
            elif not switch.get("AllowManagementOS"):
                problems.append(f"{host}'s switch {name} does not share its NIC with the management OS; "
                                f"{host} would lose {host_ip}")
            else:
                alias = f"vEthernet ({switch['Name']})".lower()
                on_vnic = [a for a in as_list(data.get("Addresses"))
                           if a.get("InterfaceAlias", "").lower() == alias and a.get("IPAddress") == host_ip]
                if not on_vnic:
                    problems.append(f"{host}'s address {host_ip} is not on 'vEthernet ({switch['Name']})'")
    return problems


# ----------------------------------------------------------------------- DC1 share

FULL_SHARE = "Full"
FULL_NTFS = {"FullControl", "268435456"}  # GENERIC_ALL shows as a number on inherit-only entries


def judge_share(data: dict[str, Any], name: str, path: str) -> Problems:
    """Get-SmbShare / Get-SmbShareAccess on DC1: the share exists on `path`, Everyone Full (seed)."""
    share = data.get("Share")
    if not share:
        return [f"DC1 has no share named {name}"]
    problems = []
    if str(share.get("Path", "")).rstrip("\\").lower() != path.rstrip("\\").lower():
        problems.append(f"the share {name} points at {share.get('Path')!r}, expected {path}")
    if not _share_allows(data, "everyone"):
        problems.append(f"Everyone does not have Full access on the share {name} (seed: 'Everyone: Full Control')")
    return problems


def _share_allows(data: dict[str, Any], account: str) -> bool:
    account = account.lower()
    entries = [a for a in as_list(data.get("Access")) if str(a.get("AccountName", "")).lower() == account]
    if any(a.get("AccessControlType") == "Deny" for a in entries):
        return False
    return any(a.get("AccessControlType") == "Allow" and a.get("AccessRight") == FULL_SHARE for a in entries)


def _ntfs_allows(data: dict[str, Any], account: str) -> bool:
    account = account.lower()
    entries = [a for a in as_list(data.get("Acl")) if str(a.get("IdentityReference", "")).lower() == account]
    if any(a.get("AccessControlType") == "Deny" for a in entries):
        return False
    return any(a.get("AccessControlType") == "Allow" and
               FULL_NTFS & {r.strip() for r in str(a.get("FileSystemRights", "")).split(",")} for a in entries)


def judge_share_permissions(data: dict[str, Any], name: str, netbios: str, hosts: list[str]) -> Problems:
    """The hosts' computer accounts (KOSA\\SVR1$) Full on the share and FullControl in NTFS, and
    Administrators Full on the share: Hyper-V opens VM files on SMB as the host's computer account."""
    if not data.get("Share"):
        return [f"DC1 has no share named {name}"]
    problems = []
    for host in hosts:
        account = f"{netbios}\\{host}$"
        if not _share_allows(data, account):
            problems.append(f"{account} does not have Full access on the share {name}")
        if not _ntfs_allows(data, account):
            problems.append(f"{account} does not have FullControl in the NTFS permissions of {data['Share'].get('Path')}")
    if not (_share_allows(data, "BUILTIN\\Administrators") or _share_allows(data, f"{netbios}\\Domain Admins")):
        problems.append(f"Administrators do not have Full access on the share {name}")
    return problems


# ---------------------------------------------------------------------- guests


def where_is(per_host: dict[str, dict[str, Any]], vm_name: str) -> dict[str, dict[str, Any]]:
    """host -> the VM as that host reports it (vms.ps1), for every host that has a VM of that name."""
    found = {}
    for host, data in per_host.items():
        for vm in as_list(data.get("VMs")):
            if vm.get("Name", "").lower() == vm_name.lower():
                found[host] = vm
    return found


def share_prefixes(dc: str, fqdn: str, dc_ip: str, share: str) -> list[str]:
    """The UNC forms a Hyper-V host may record for a file on DC1's share."""
    return [f"\\\\{h}\\{share}\\".lower() for h in (dc, f"{dc}.{fqdn}", dc_ip)]


def on_share(path: str, prefixes: list[str]) -> bool:
    return any(path.lower().startswith(p) for p in prefixes)


def judge_guest(per_host: dict[str, dict[str, Any]], name: str, switches: list[str],
                prefixes: list[str] | None = None, adapter: str = "legacy") -> Problems:
    """One nested guest: exists on exactly one host, generation 1 (the seed's choice, and Windows
    Server 2003 boots only there), one NIC per switch of lab.yaml, each of the adapter kind lab.yaml
    gives the guest (a legacy adapter for a guest without integration services), a disk (on the
    share if asked)."""
    found = where_is(per_host, name)
    if not found:
        return [f"no VM named {name} on {' or '.join(per_host)}"]
    if len(found) > 1:
        return [f"{name} exists on {' and '.join(found)}; a VM lives on one host"]
    host, vm = next(iter(found.items()))
    problems = []
    if vm.get("Generation") != 1:
        problems.append(f"{name} on {host} is generation {vm.get('Generation')}, expected 1 (Windows Server 2003 needs BIOS)")
    seen = Counter(str(n.get("SwitchName") or "(not connected)").lower() for n in as_list(vm.get("Nics")))
    want = Counter(s.lower() for s in switches)
    if seen != want:
        problems.append(f"{name}'s NICs are on {sorted(seen.elements())}, expected {sorted(want.elements())}")
    wrong_kind = sorted(str(n.get("SwitchName") or "(not connected)") for n in as_list(vm.get("Nics"))
                        if bool(n.get("IsLegacy")) != (adapter == "legacy"))
    if wrong_kind and adapter == "legacy":
        problems.append(f"{name}'s NIC on {', '.join(wrong_kind)} is a synthetic adapter, which the guest has no driver for "
                        "(no integration services): remove it and add a legacy network adapter")
    elif wrong_kind:
        problems.append(f"{name}'s NIC on {', '.join(wrong_kind)} is a legacy adapter; lab.yaml gives it a synthetic one")
    disks = [d.get("Path", "") for d in as_list(vm.get("Disks"))]
    if not disks:
        problems.append(f"{name} has no virtual hard disk")
    elif prefixes is not None and not any(on_share(p, prefixes) for p in disks):
        problems.append(f"{name}'s disk is {disks[0]}, expected on {prefixes[0]}")
    return problems


# ------------------------------------------------------------------ router addressing


def judge_public_leg(vm: dict[str, Any], neighbors: dict[str, Any], switch: str, address: str) -> Problems:
    """The MAC that answers ARP for the router's public address is the router's NIC on `switch`."""
    nic_macs = {mac(n.get("MacAddress", "")) for n in as_list(vm.get("Nics"))
                if str(n.get("SwitchName", "")).lower() == switch.lower()}
    answering = {mac(n.get("LinkLayerAddress", "")) for n in as_list(neighbors.get("Neighbors"))
                 if n.get("State") not in ("Unreachable", "Incomplete") and mac(n.get("LinkLayerAddress", "")) not in ("", "000000000000")}
    if not nic_macs:
        return [f"{vm.get('Name')} has no NIC on {switch}"]
    if not answering:
        return [f"nothing answers ARP for {address} on the hosts' network; is {vm.get('Name')} running with {address} on its {switch} NIC?"]
    if not answering & nic_macs:
        return [f"{address} is answered by MAC {sorted(answering)}, not by {vm.get('Name')}'s {switch} NIC {sorted(nic_macs)}"]
    return []


def judge_reported_addresses(vm: dict[str, Any], expected: dict[str, str]) -> Problems | None:
    """switch -> 'a.b.c.d/nn' as the guest reports through integration services (KVP).

    None when the guest reports no address at all (no integration services, as in a plain Windows
    Server 2003 image): the addresses cannot be read from outside, which is not the student's fault.
    """
    nics = as_list(vm.get("Nics"))
    if not any(as_list(n.get("IPAddresses")) for n in nics):
        return None
    problems = []
    for switch, want in expected.items():
        ip = str(IPv4Interface(want).ip)
        on_switch = [n for n in nics if str(n.get("SwitchName", "")).lower() == switch.lower()]
        reported = [a for n in on_switch for a in as_list(n.get("IPAddresses"))]
        if ip not in reported:
            problems.append(f"{vm.get('Name')}'s NIC on {switch} reports {reported or 'no address'}, expected {ip}")
    return problems


# ------------------------------------------------------------- live migration settings


def judge_migration_host(data: dict[str, Any], host: str, host_ip: str) -> Problems:
    """Get-VMHost: incoming and outgoing live migration on, Kerberos, and the host's own address
    among the migration networks (or any network allowed)."""
    problems = []
    if not data.get("VirtualMachineMigrationEnabled"):
        problems.append(f"{host}: live migration is off (VirtualMachineMigrationEnabled is False)")
    auth = data.get("VirtualMachineMigrationAuthenticationType")
    if auth != "Kerberos":
        problems.append(f"{host}: live migration authenticates with {auth}, expected Kerberos")
    if not data.get("UseAnyNetworkForMigration"):
        subnets = [str(n.get("Subnet", "")) for n in as_list(data.get("Networks"))]
        if not any(_contains(s, host_ip) for s in subnets):
            problems.append(f"{host}: its migration networks {subnets or '(none)'} do not include {host_ip}")
    return problems


def _contains(subnet: str, ip: str) -> bool:
    try:
        return IPv4Address(ip) in IPv4Network(subnet if "/" in subnet else f"{subnet}/32", strict=False)
    except ValueError:
        return False  # an IPv6 subnet, or text we do not understand: not the host's IPv4 address


# --------------------------------------------------------------------- migrations


def judge_runs_on(per_host: dict[str, dict[str, Any]], name: str, host: str) -> Problems:
    """After a live migration: the VM is on `host` only, and running (live = never stopped)."""
    found = where_is(per_host, name)
    if not found:
        return [f"no VM named {name} on {' or '.join(per_host)}"]
    if host not in found:
        return [f"{name} is still on {', '.join(found)}, expected on {host}"]
    others = [h for h in found if h != host]
    if others:
        return [f"{name} is on {host} and also on {', '.join(others)}"]
    if found[host].get("State") != "Running":
        return [f"{name} on {host} is {found[host].get('State')}, expected Running"]
    return []


def judge_local_disks(vm: dict[str, Any], prefixes: list[str]) -> Problems:
    """Shared-nothing: the storage moved with the VM, so it is not on the share."""
    remote = [d.get("Path", "") for d in as_list(vm.get("Disks")) if str(d.get("Path", "")).startswith("\\\\")]
    if remote:
        return [f"{vm.get('Name')}'s disks are on {remote}: a shared-nothing migration moves them to the host"]
    return []


def judge_disks_on_share(vm: dict[str, Any], prefixes: list[str]) -> Problems:
    """SMB and storage migration: every disk of the VM lives on DC1's share."""
    disks = [d.get("Path", "") for d in as_list(vm.get("Disks"))]
    off = [p for p in disks if not on_share(p, prefixes)]
    if not disks:
        return [f"{vm.get('Name')} has no virtual hard disk"]
    if off:
        return [f"{vm.get('Name')}'s disk {off[0]} is not on {prefixes[0]}"]
    return []


# ------------------------------------------------------------------- delegation

MIGRATION_SERVICE = "Microsoft Virtual System Migration Service"


def judge_delegation(data: dict[str, Any], host: str, other: str, dc: str, fqdn: str) -> Problems:
    """msDS-AllowedToDelegateTo of `host`: cifs on DC1, and cifs and the migration service on the
    other host (moving storage with Kerberos writes to the destination's SMB, Microsoft's "live
    migration without Failover Clustering").

    dsa.msc writes both the short and the FQDN SPN; one of them is enough. 'Kerberos only' or 'any
    authentication protocol' both pass: Microsoft recommends the latter since Windows Server 2016.
    """
    accounts = {short(c["Name"]): c for c in as_list(data.get("Computers"))}
    account = accounts.get(host.lower())
    if account is None:
        return [f"DC1 has no computer account {host}"]
    spns = {s.lower() for s in as_list(account.get("AllowedToDelegateTo"))}
    problems = []
    for service, target in (("cifs", dc), ("cifs", other), (MIGRATION_SERVICE, other)):
        forms = {f"{service}/{target}".lower(), f"{service}/{target}.{fqdn}".lower()}
        if not spns & forms:
            problems.append(f"{host} may not delegate to {service}/{target} (msDS-AllowedToDelegateTo: {sorted(spns) or 'empty'})")
    if account.get("TrustedForDelegation"):
        problems.append(f"{host} is trusted for unconstrained delegation; choose 'trust for specified services only'")
    return problems


# ---------------------------------------------------------------------- replica


def judge_replica_server(data: dict[str, Any], host: str) -> Problems:
    """Get-VMReplicationServer and the listener's firewall rule, as the seed configures them."""
    problems = []
    if not data.get("ReplicationEnabled"):
        problems.append(f"{host} is not a Replica server (ReplicationEnabled is False)")
    if data.get("AllowedAuthenticationType") not in ("Kerberos", "CertificateAndKerberos"):
        problems.append(f"{host} accepts {data.get('AllowedAuthenticationType')} replication, expected Kerberos (HTTP)")
    if not data.get("ReplicationAllowedFromAnyServer"):
        problems.append(f"{host} does not allow replication from any authenticated server")
    rule = data.get("FirewallRule")
    if not rule:
        problems.append(f"{host} has no firewall rule VIRT-HVRHTTPL-In-TCP-NoScope")
    elif rule.get("Enabled") != "True" or rule.get("Action") != "Allow":
        problems.append(f"{host}: firewall rule '{rule.get('DisplayName')}' is Enabled={rule.get('Enabled')}, "
                        f"Action={rule.get('Action')}; enable it")
    return problems


def _replication(data: dict[str, Any]) -> dict[str, Any] | None:
    entries = as_list(data.get("Replication"))
    return entries[0] if entries else None


def judge_replication(primary: dict[str, Any], replica: dict[str, Any], vm: str, primary_host: str,
                      replica_host: str, frequency: int, *, running: bool = False) -> Problems:
    """Get-VMReplication on both hosts: `primary_host` replicates `vm` to `replica_host` every
    `frequency` seconds, healthy (Normal) and Replicating. `running`: the primary VM must run."""
    here = _replication(primary)
    there = _replication(replica)
    if here is None:
        return [f"{vm} is not replicated from {primary_host} (Get-VMReplication there returns nothing)"]
    problems = []
    if here.get("ReplicationMode") != "Primary":
        problems.append(f"on {primary_host}, {vm} is the {here.get('ReplicationMode')} side, expected Primary")
    if short(str(here.get("ReplicaServerName", ""))) != replica_host.lower():
        problems.append(f"{vm} replicates to {here.get('ReplicaServerName')!r}, expected {replica_host}")
    if here.get("ReplicationFrequencySec") != frequency:
        problems.append(f"{vm} replicates every {here.get('ReplicationFrequencySec')} s, expected {frequency} s")
    if here.get("ReplicationState") != "Replicating":
        problems.append(f"{vm}'s replication is {here.get('ReplicationState')}, expected Replicating")
    if here.get("ReplicationHealth") != "Normal":
        problems.append(f"{vm}'s replication health is {here.get('ReplicationHealth')}, expected Normal")
    if there is None or there.get("ReplicationMode") != "Replica":
        problems.append(f"{replica_host} holds no replica of {vm}")
    vm_view = primary.get("VM") or {}
    if running and vm_view.get("State") != "Running":
        problems.append(f"{vm} on {primary_host} is {vm_view.get('State')}, expected Running")
    return problems
