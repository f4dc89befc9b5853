"""libvirt XML: golden files, libvirt's own schema (virt-xml-validate), and the properties
that matter for safety and for nested Hyper-V hosts.

Update the golden files after an intended change with HYPERLAB_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hyperlab.render.libvirt_xml import all_xml, domain_xml
from hyperlab.core.load import load_lab
from hyperlab.core.plan import METADATA_NS, HostFacts, plan
from tests.unit.labfiles import write_lab

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenGoldenGoldenGoldenGoldenGoldenGold golden@test"
CASES = {
    "chapter-2-kvm-intel": ("chapter-2", HostFacts(accel="kvm", cpu_vendor="intel")),
    "chapter-2-kvm-amd": ("chapter-2", HostFacts(accel="kvm", cpu_vendor="amd")),
    "chapter-2-linux-tcg": ("chapter-2-linux", HostFacts(accel="tcg", ssh_public_key=KEY)),
    "chapter-1-kvm-intel": ("chapter-1", HostFacts(accel="kvm", ssh_public_key=KEY)),
}
SCHEMA_KIND = {"network": "network", "pool": "storagepool", "volume": "storagevol", "domain": "domain"}


def generated(case: str) -> dict[str, str]:
    lab, facts = CASES[case]
    return all_xml(plan(load_lab(lab, ROOT), "alice", facts))


@pytest.mark.parametrize("case", CASES)
def test_xml_matches_the_golden_files(case: str) -> None:
    files = generated(case)
    folder = GOLDEN / case
    if os.environ.get("HYPERLAB_UPDATE_GOLDEN") == "1":
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    for name, text in files.items():
        assert (folder / name).read_text() == text, f"{case}/{name} differs; HYPERLAB_UPDATE_GOLDEN=1 if intended"


@pytest.mark.parametrize("case", CASES)
def test_every_xml_passes_libvirts_own_schema(case: str, tmp_path: Path) -> None:
    validator = shutil.which("virt-xml-validate")
    assert validator, "virt-xml-validate is missing: apt-get install libvirt-clients libxml2-utils (scripts/setup-host.sh)"
    for name, text in generated(case).items():
        path = tmp_path / name
        path.write_text(text)
        kind = SCHEMA_KIND[name.split("-")[0].removesuffix(".xml")]
        result = subprocess.run([validator, str(path), kind], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    text = generated("chapter-1-kvm-intel")["domain-HV1.xml"].replace("<vcpu ", "<vcpus ").replace("</vcpu>", "</vcpus>")
    (tmp_path / "bad.xml").write_text(text)
    result = subprocess.run(["virt-xml-validate", str(tmp_path / "bad.xml"), "domain"], capture_output=True)
    assert result.returncode != 0


def parse(case: str, name: str) -> ET.Element:
    return ET.fromstring(generated(case)[name])


def test_nested_hyperv_host_profile_on_intel() -> None:
    svr1 = parse("chapter-2-kvm-intel", "domain-SVR1.xml")
    assert svr1.get("type") == "kvm"
    cpu = svr1.find("cpu")
    assert cpu is not None and cpu.get("mode") == "host-passthrough"
    assert [(f.get("policy"), f.get("name")) for f in cpu.findall("feature")] == [("require", "vmx")]
    hyperv = svr1.find("features/hyperv")
    assert hyperv is not None and hyperv.get("mode") == "custom"  # never passthrough
    assert hyperv.find("stimer/direct") is not None and hyperv.find("evmcs") is not None
    assert svr1.find("features/kvm/hidden") is None  # Hyper-V must see its hypervisor bit
    assert svr1.find("os").get("firmware") == "efi"
    assert svr1.find("clock").get("offset") == "localtime"


def test_nested_hyperv_host_profile_on_amd_has_svm_and_no_evmcs() -> None:
    svr1 = parse("chapter-2-kvm-amd", "domain-SVR1.xml")
    assert [f.get("name") for f in svr1.findall("cpu/feature")] == ["svm"]
    assert svr1.find("features/hyperv/evmcs") is None


def test_a_windows_node_that_is_not_nested_has_no_vmx() -> None:
    dc1 = parse("chapter-2-kvm-intel", "domain-DC1.xml")
    assert dc1.findall("cpu/feature") == [] and dc1.find("features/hyperv/evmcs") is None


def test_software_emulation_uses_qemu_domains_with_a_small_translation_cache() -> None:
    for name in ("domain-DC1.xml", "domain-SVR1.xml", "domain-ROUTER.xml"):
        domain = parse("chapter-2-linux-tcg", name)
        assert domain.get("type") == "qemu"
        cache = domain.find("features/tcg/tb-cache")
        assert cache is not None and (cache.text, cache.get("unit")) == ("64", "MiB")
        assert domain.find("features/acpi") is not None
    assert parse("chapter-2-linux-tcg", "domain-SVR1.xml").find("cpu").get("mode") == "maximum"
    assert parse("chapter-2-linux-tcg", "domain-DC1.xml").find("cpu") is None


def test_consoles_and_graphics_listen_on_loopback_only() -> None:
    for case in CASES:
        for name, text in generated(case).items():
            for graphics in ET.fromstring(text).iter("graphics"):
                assert graphics.get("listen") == "127.0.0.1"
                assert {l.get("address") for l in graphics.iter("listen")} == {"127.0.0.1"}


def test_every_domain_and_network_carries_the_instance_metadata() -> None:
    for name, text in generated("chapter-2-linux-tcg").items():
        if name.startswith(("domain-", "network-")):
            meta = ET.fromstring(text).find(f"metadata/{{{METADATA_NS}}}instance")
            assert meta is not None, name
            assert (meta.get("lab"), meta.get("instance")) == ("chapter-2-linux", "alice")
            assert len(meta.get("topology-hash", "")) == 16


def test_lab_networks_are_bare_bridges_without_host_address_or_nat() -> None:
    for name in ("network-public.xml", "network-gw1.xml"):
        network = parse("chapter-2-linux-tcg", name)
        assert network.find("ip") is None and network.find("forward") is None
        assert len(network.find("bridge").get("name")) <= 15


def test_linux_nodes_boot_their_kernel_with_credentials_in_smbios() -> None:
    dc1 = parse("chapter-2-linux-tcg", "domain-DC1.xml")
    assert dc1.find("os/kernel").text.endswith("debian-12.vmlinuz")
    assert dc1.find("os/smbios").get("mode") == "sysinfo"
    entry = dc1.find("sysinfo/oemStrings/entry").text
    assert entry.startswith("io.systemd.credential.binary:tmpfiles.extra=")
    slots = [a.get("slot") for a in parse("chapter-2-linux-tcg", "domain-ROUTER.xml").findall("devices/interface/address")]
    assert slots == ["0x03", "0x04", "0x05"]


def test_overlays_are_backed_by_the_golden_image() -> None:
    volume = parse("chapter-2-linux-tcg", "volume-DC1.xml")
    assert volume.find("backingStore/path").text == "/var/lib/libvirt/images/hyperlab/debian-12.qcow2"
    assert volume.find("target/format").get("type") == "qcow2"
    assert parse("chapter-2-kvm-intel", "volume-SVR1.disk1.xml").find("backingStore") is None


def test_secure_boot_and_tpm_where_asked(tmp_path: Path) -> None:
    loaded = write_lab(tmp_path, "w", "networks: {n: {cidr: 10.0.0.0/24}}\n"
                       "nodes: {W11: {image: windows-server-2025, firmware: uefi, secure_boot: true, tpm: true}}\n")
    p = plan(loaded, "i")
    domain = ET.fromstring(domain_xml(p, p.node("W11")))
    assert {f.get("name"): f.get("enabled") for f in domain.findall("os/firmware/feature")} == {
        "secure-boot": "yes", "enrolled-keys": "yes"}
    assert domain.find("features/smm").get("state") == "on"
    tpm = domain.find("devices/tpm")
    assert tpm.get("model") == "tpm-crb" and tpm.find("backend").get("version") == "2.0"
