"""The Windows answer files: well-formed, in Microsoft's namespace, each pass with what it needs.

Password encoding is checked against the examples on Microsoft's own pages (learn.microsoft.com,
"UserAccounts" and "LocalAccounts ... Password ... Value"): `cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8AcgBkAA==`
is "pw" + "AdministratorPassword" and `cABhAHMAcwB3AG8AcgBkAFAAYQBzAHMAdwBvAHIAZAA=` is "password" + "Password",
both base64 of UTF-16LE.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from ipaddress import IPv4Address, IPv4Interface

import pytest

from hyperlab.render.unattend import (
    LOCALES,
    InstallAnswer,
    NodeAnswer,
    NodeNic,
    autounattend_xml,
    decode_password,
    driver_paths,
    encode_password,
    node_unattend_xml,
)

NS = "{urn:schemas-microsoft-com:unattend}"
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
SECRET = "S3cret!<&>'\"pw"


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text.encode())
    assert root.tag == f"{NS}unattend"
    return root


def passes(root: ET.Element) -> dict[str, ET.Element]:
    return {s.get("pass"): s for s in root.findall(f"{NS}settings")}


def component(settings: ET.Element, name: str) -> ET.Element:
    found = [c for c in settings.findall(f"{NS}component") if c.get("name") == name]
    assert len(found) == 1, f"{name} missing in pass {settings.get('pass')}"
    return found[0]


def text(element: ET.Element, path: str) -> str:
    value = element.findtext("/".join(f"{NS}{part}" for part in path.split("/")))
    assert value is not None, path
    return value


def test_password_encoding_matches_microsofts_examples() -> None:
    assert encode_password("pw", "AdministratorPassword") == \
        "cAB3AEEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8AcgBkAA=="
    assert encode_password("password", "Password") == "cABhAHMAcwB3AG8AcgBkAFAAYQBzAHMAdwBvAHIAZAA="
    assert decode_password(encode_password(SECRET, "Password"), "Password") == SECRET


@pytest.mark.parametrize("version", ["2019", "2022", "2025"])
def test_autounattend_has_every_pass_and_component_it_needs(version: str) -> None:
    xml = autounattend_xml(InstallAnswer(version=version, image_index=2, admin_password=SECRET))  # type: ignore[arg-type]
    root = parse(xml)
    by_pass = passes(root)
    assert set(by_pass) == {"windowsPE", "specialize", "oobeSystem"}
    for comp in root.iter(f"{NS}component"):
        assert comp.get("processorArchitecture") == "amd64"
        assert comp.get("publicKeyToken") == "31bf3856ad364e35"

    pe = by_pass["windowsPE"]
    paths = [p.text for p in pe.iter(f"{NS}Path")]
    folder = {"2019": "2k19", "2022": "2k22", "2025": "2k25"}[version]
    for driver in ("viostor", "vioscsi", "NetKVM"):
        assert f"E:\\{driver}\\{folder}\\amd64" in paths
    keys = [p.get(f"{WCM}keyValue") for p in pe.iter(f"{NS}PathAndCredentials")]
    assert len(keys) == len(set(keys)), "DriverPaths keys must be unique"
    setup = component(pe, "Microsoft-Windows-Setup")
    kinds = [p.findtext(f"{NS}Type") for p in setup.iter(f"{NS}CreatePartition")]
    assert kinds == ["EFI", "MSR", "Primary"]
    assert text(setup, "ImageInstall/OSImage/InstallFrom/MetaData/Key") == "/IMAGE/INDEX"
    assert text(setup, "ImageInstall/OSImage/InstallFrom/MetaData/Value") == "2"
    assert text(setup, "ImageInstall/OSImage/InstallTo/PartitionID") == "3"
    assert text(setup, "UserData/AcceptEula") == "true"
    assert setup.find(f"{NS}UserData/{NS}ProductKey") is None  # evaluation media: no key at all
    component(pe, "Microsoft-Windows-International-Core-WinPE")

    shell = component(by_pass["specialize"], "Microsoft-Windows-Shell-Setup")
    assert text(shell, "ComputerName")

    oobe = component(by_pass["oobeSystem"], "Microsoft-Windows-Shell-Setup")
    admin = oobe.find(f"{NS}UserAccounts/{NS}AdministratorPassword")
    assert admin is not None and admin.findtext(f"{NS}PlainText") == "false"
    assert decode_password(admin.findtext(f"{NS}Value") or "", "AdministratorPassword") == SECRET
    logon = oobe.find(f"{NS}AutoLogon/{NS}Password")
    assert logon is not None and decode_password(logon.findtext(f"{NS}Value") or "", "Password") == SECRET
    command = text(oobe, "FirstLogonCommands/SynchronousCommand/CommandLine")
    assert "hyperlab\\build.ps1" in command
    assert SECRET not in xml and "S3cret" not in xml


def test_2025_falls_back_to_2k22_drivers_of_older_virtio_media() -> None:
    paths = driver_paths("2025")
    assert "D:\\viostor\\2k25\\amd64" in paths and "D:\\viostor\\2k22\\amd64" in paths


def test_product_key_and_korean_locale() -> None:
    xml = autounattend_xml(InstallAnswer(version="2022", image_index=4, admin_password="x", locale=LOCALES["ko-KR"],
                                         product_key="WX4NM-KYWYW-QJJR4-XV3QB-6VM33"))
    root = parse(xml)
    pe = passes(root)["windowsPE"]
    assert text(component(pe, "Microsoft-Windows-Setup"), "UserData/ProductKey/Key") == "WX4NM-KYWYW-QJJR4-XV3QB-6VM33"
    intl = component(pe, "Microsoft-Windows-International-Core-WinPE")
    assert text(intl, "SystemLocale") == "ko-KR" and text(intl, "InputLocale").startswith("0412:00000412")
    assert text(intl, "SetupUILanguage/UILanguage") == "en-US"  # the language the evaluation media carry
    oobe = component(passes(root)["oobeSystem"], "Microsoft-Windows-Shell-Setup")
    assert text(oobe, "TimeZone") == "Korea Standard Time"


def node_answer() -> NodeAnswer:
    return NodeAnswer(
        computer_name="SVR1", admin_password=SECRET, dns_suffix="kosa.vm",
        nics=(NodeNic("52:54:00:aa:bb:01", IPv4Interface("192.168.1.110/24"), IPv4Address("192.168.1.2"),
                      (IPv4Address("192.168.1.100"),)),
              NodeNic("52:54:00:aa:bb:02", None)),
    )


def test_node_unattend_specializes_name_addresses_dns_and_password() -> None:
    xml = node_unattend_xml(node_answer())
    root = parse(xml)
    by_pass = passes(root)
    assert set(by_pass) == {"specialize", "oobeSystem"}  # no windowsPE: the image is already installed
    for comp in root.iter(f"{NS}component"):
        assert comp.get("processorArchitecture") == "amd64"
    spec = by_pass["specialize"]
    assert text(component(spec, "Microsoft-Windows-Shell-Setup"), "ComputerName") == "SVR1"
    interfaces = component(spec, "Microsoft-Windows-TCPIP").findall(f"{NS}Interfaces/{NS}Interface")
    assert len(interfaces) == 1  # the NIC without an address is left to DHCP or the student
    nic = interfaces[0]
    assert text(nic, "Identifier") == "52-54-00-AA-BB-01"
    assert text(nic, "Ipv4Settings/DhcpEnabled") == "false"
    assert text(nic, "UnicastIpAddresses/IpAddress") == "192.168.1.110/24"
    assert text(nic, "Routes/Route/Prefix") == "0.0.0.0/0"
    assert text(nic, "Routes/Route/NextHopAddress") == "192.168.1.2"
    dns = component(spec, "Microsoft-Windows-DNS-Client")
    assert text(dns, "DNSDomain") == "kosa.vm"
    assert text(dns, "Interfaces/Interface/DNSServerSearchOrder/IpAddress") == "192.168.1.100"
    run = text(component(spec, "Microsoft-Windows-Deployment"), "RunSynchronous/RunSynchronousCommand/Path")
    assert "SetupComplete.cmd" in run and "C:\\Windows\\Setup\\Scripts\\SetupComplete.cmd" in run
    assert text(component(spec, "Microsoft-Windows-TerminalServices-LocalSessionManager"), "fDenyTSConnections") == "false"
    oobe = component(by_pass["oobeSystem"], "Microsoft-Windows-Shell-Setup")
    value = oobe.findtext(f"{NS}UserAccounts/{NS}AdministratorPassword/{NS}Value") or ""
    assert decode_password(value, "AdministratorPassword") == SECRET
    assert oobe.findtext(f"{NS}UserAccounts/{NS}AdministratorPassword/{NS}PlainText") == "false"
    assert SECRET not in xml


def test_xml_is_deterministic() -> None:
    assert node_unattend_xml(node_answer()) == node_unattend_xml(node_answer())


def test_every_component_and_setting_is_one_microsoft_documents() -> None:
    """Setup ignores an unknown component without a word (`Microsoft-Windows-Networking-MPSSVC-Svc`
    shipped once; the component is `Networking-MPSSVC-Svc`): each name the generator writes must be in
    Microsoft's unattend reference, in a pass it is valid in (tests/data/recorded/windows/)."""
    import json
    from pathlib import Path

    facts = json.loads((Path(__file__).resolve().parents[2] / "tests" / "data" / "recorded" / "windows" /
                        "unattend-components.json").read_text(encoding="utf-8"))
    documents = [node_unattend_xml(node_answer())]
    documents += [autounattend_xml(InstallAnswer(version=v, image_index=2, admin_password="x", locale=LOCALES[locale],  # type: ignore[arg-type]
                                                 product_key=key))
                  for v in ("2019", "2022", "2025") for locale in sorted(LOCALES) for key in (None, "WX4NM-KYWYW-QJJR4-XV3QB-6VM33")]
    wrong = set()
    for xml in documents:
        for settings in parse(xml).findall(f"{NS}settings"):
            for comp in settings.findall(f"{NS}component"):
                name, where = comp.get("name", ""), settings.get("pass", "")
                spec = facts.get(name)
                if spec is None or name.startswith("_"):
                    wrong.add(f"unknown component {name}")
                    continue
                if where not in spec["passes"]:
                    wrong.add(f"{name} in pass {where} (valid in {', '.join(spec['passes'])})")
                wrong |= {f"{name}: unknown setting {child.tag.removeprefix(NS)}" for child in comp
                          if child.tag.removeprefix(NS) not in spec["settings"]}
    assert wrong == set()
