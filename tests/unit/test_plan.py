from __future__ import annotations

import base64
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.core.plan import HostFacts, Plan, plan
from tests.unit.labfiles import write_lab

ROOT = Path(__file__).resolve().parents[2]
LABS = ["chapter-2", "chapter-2-linux", "chapter-1"]


@pytest.fixture(scope="module", params=LABS)
def loaded(request: pytest.FixtureRequest) -> LoadedLab:
    return load_lab(request.param, ROOT)


def libvirt_names(p: Plan) -> set[str]:
    return {p.pool} | {n.libvirt_name for n in p.networks} | {n.domain for n in p.nodes}


def test_the_same_input_gives_a_byte_identical_plan(loaded: LoadedLab) -> None:
    first = plan(loaded, "alice").model_dump_json()
    again = plan(load_lab(loaded.lab.id, ROOT), "alice").model_dump_json()
    assert first == again


def test_two_instances_share_no_name_mac_bridge_or_host_route(loaded: LoadedLab) -> None:
    alice, bob = plan(loaded, "alice"), plan(loaded, "bob")
    assert not libvirt_names(alice) & libvirt_names(bob)
    macs = lambda p: {nic.mac for node in p.nodes for nic in node.nics}  # noqa: E731
    assert not macs(alice) & macs(bob)
    assert not {n.bridge for n in alice.networks} & {n.bridge for n in bob.networks}
    assert alice.host_side.netns != bob.host_side.netns
    assert not alice.host_side.transit.overlaps(bob.host_side.transit)
    assert alice.host_side.host_veth != bob.host_side.host_veth
    assert alice.pool_path != bob.pool_path
    assert not {v.path for n in alice.nodes for v in n.volumes} & {v.path for n in bob.nodes for v in n.volumes}


def test_guests_keep_the_lessons_addresses_in_every_instance(loaded: LoadedLab) -> None:
    ips = lambda p: [(node.name, nic.ip) for node in p.nodes for nic in node.nics]  # noqa: E731
    assert ips(plan(loaded, "alice")) == ips(plan(loaded, "bob"))


def test_linux_names_are_short_enough_for_the_kernel(loaded: LoadedLab) -> None:
    p = plan(loaded, "a-very-long-instance-name-for-a-student")
    for name in [n.bridge for n in p.networks] + [n.host_veth + "p" for n in p.networks if n.host_veth] + [p.host_side.host_veth + "n"]:
        assert len(name) <= 15, name


def test_macs_are_unique_locally_administered_qemu_macs(loaded: LoadedLab) -> None:
    macs = [nic.mac for node in plan(loaded, "alice").nodes for nic in node.nics]
    assert len(macs) == len(set(macs))
    assert all(mac.startswith("52:54:00:") for mac in macs)


def test_the_transit_link_is_link_local_and_clear_of_the_lab(loaded: LoadedLab) -> None:
    hs = plan(loaded, "alice").host_side
    assert hs.transit.prefixlen == 30 and hs.transit.is_link_local
    assert hs.host_end.ip in hs.transit and hs.netns_end.ip in hs.transit and hs.host_end != hs.netns_end
    assert not any(hs.transit.overlaps(net.cidr) for net in loaded.topology.topology.networks.values())


def test_chapter_2_plans_the_public_network_with_the_lessons_host_side() -> None:
    p = plan(load_lab("chapter-2", ROOT), "alice")
    public = p.networks[0]
    assert (public.name, public.mode, public.host_address) == ("public", "nat", IPv4Interface("192.168.1.2/24"))
    svr1 = p.node("SVR1")
    assert svr1.nested and svr1.os == "windows" and svr1.firmware == "uefi"
    assert svr1.nics[0].ip == IPv4Interface("192.168.1.110/24") and str(svr1.nics[0].gateway) == "192.168.1.2"
    assert [v.device for v in svr1.volumes] == ["vda", "vdb", "vdc"] and svr1.volumes[1].backing is None
    # vdc: a thin overlay of the store's guest-vhdx data disk (the VHDX reaches each host without a copy)
    assert svr1.volumes[2].image == "guest-vhdx" and svr1.volumes[2].backing == svr1.volumes[0].backing.parent / "guest-vhdx.qcow2"
    assert svr1.unattend_iso == p.pool_path / "SVR1.unattend.iso"
    assert p.waves() == [["DC1"], ["SVR1", "SVR2"]]


def test_linux_nodes_get_their_addresses_through_systemd_credentials() -> None:
    p = plan(load_lab("chapter-2-linux", ROOT), "alice", HostFacts(ssh_public_key="ssh-ed25519 AAAAkey test"))
    dc1 = p.node("DC1")
    assert dc1.cmdline is not None and dc1.cmdline.endswith("systemd.hostname=dc1")
    lines = base64.b64decode(dc1.credentials["tmpfiles.extra"]).decode().splitlines()
    network = [l for l in lines if "/etc/systemd/network/" in l]
    assert len(network) == 1 and network[0].startswith("f+~ ")
    unit = base64.b64decode(network[0].split()[-1]).decode()
    assert f"MACAddress={dc1.nics[0].mac}" in unit
    assert "Address=192.168.1.100/24" in unit and "Gateway=192.168.1.2" in unit
    assert "DNS=192.168.1.100" in unit and "Domains=kosa.vm" in unit
    resolv = [l for l in lines if l.split()[1] == "/etc/resolv.conf"]
    assert base64.b64decode(resolv[0].split()[-1]).decode() == "search kosa.vm\nnameserver 192.168.1.100\n"
    keys = [l for l in lines if "authorized_keys" in l]
    assert base64.b64decode(keys[0].split()[-1]).decode() == "ssh-ed25519 AAAAkey test\n"


def test_student_set_addresses_are_left_for_the_student() -> None:
    p = plan(load_lab("chapter-2-linux", ROOT), "alice")
    router = p.node("ROUTER")
    assert [str(n.ip) for n in router.nics] == ["192.168.1.111/24", "10.10.10.1/24", "10.10.20.1/24"]
    assert all(n.set_by == "student" for n in router.nics)
    assert router.credentials == {}  # nothing to configure: no network units, no key


def test_an_explicit_mac_is_kept(tmp_path: Path) -> None:
    loaded = write_lab(tmp_path, "x", "networks: {n: {cidr: 10.0.0.0/24}}\n"
                       "nodes: {A: {image: tiny, nics: [{network: n, ip: 10.0.0.5, mac: '52:54:00:00:00:01'}, {network: n}]}}\n")
    node = plan(loaded, "i").node("A")
    assert node.nics[0].mac == "52:54:00:00:00:01"
    assert node.nics[1].mac != node.nics[0].mac and node.nics[1].ip is None


def test_tcg_and_kvm_plans_differ_only_in_acceleration() -> None:
    loaded = load_lab("chapter-2-linux", ROOT)
    kvm, tcg = plan(loaded, "a", HostFacts(accel="kvm")), plan(loaded, "a", HostFacts(accel="tcg"))
    assert kvm.model_copy(update={"accel": "tcg"}) == tcg
