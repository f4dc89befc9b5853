"""Windows answer files, as pure functions: `autounattend.xml` for the golden image build and the
per-node `unattend.xml` that specializes a sysprepped overlay.

Built with ElementTree (values are always escaped) in the unattend namespace, one `component`
per Windows feature, every component `processorArchitecture="amd64"`. Passwords are written the
way Windows SIM writes a hidden password: `PlainText` false and `Value` the base64 of the UTF-16LE
bytes of the password followed by the field name ("AdministratorPassword" or "Password"). This is
Microsoft's obfuscation, not encryption: it keeps the password out of sight in logs and listings,
and the answer media stay 0600 for that reason.

What each pass does here:

* **windowsPE** (build only): locale of Setup, the virtio storage/network drivers from the
  virtio-win media (`DriverPaths`, every candidate CD drive letter: Setup skips paths that do not
  exist), UEFI GPT partitions (EFI 100 MB, MSR 16 MB, Windows on the rest), the install image by
  index, EULA accepted, product key only when given (evaluation media need none).
* **specialize**: computer name, time zone, static addresses and DNS per NIC (matched by MAC),
  Remote Desktop on; on nodes, a command that copies `SetupComplete.cmd` from the node medium.
* **oobeSystem**: locale, OOBE pages skipped, the Administrator password; in the build,
  auto-logon once and the first-logon command that installs the guest tools.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Literal

NS = "urn:schemas-microsoft-com:unattend"
WCM = "http://schemas.microsoft.com/WMIConfig/2002/State"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ARCH = "amd64"
PUBLIC_KEY_TOKEN = "31bf3856ad364e35"
ET.register_namespace("", NS)  # answer files use it as their default namespace; nothing else does
ET.register_namespace("wcm", WCM)
ET.register_namespace("xsi", XSI)

WindowsVersion = Literal["2019", "2022", "2025"]
# virtio-win folder per OS (seed 002: `CD Drive\amd64\2k22`, per driver `viostor\2k22\amd64`).
# virtio-win releases before 0.1.262 have no 2k25 folder: 2025 falls back to the 2k22 drivers.
VIRTIO_FOLDERS: dict[str, tuple[str, ...]] = {"2019": ("2k19",), "2022": ("2k22",), "2025": ("2k25", "2k22")}
VIRTIO_DRIVERS = ("viostor", "vioscsi", "NetKVM", "vioserial", "Balloon")
# In Windows PE the first CD is D:; the install, virtio and answer media take three letters of these.
CD_LETTERS = ("D", "E", "F", "G", "H", "I")
# Microsoft's KMS client setup keys (GVLK, learn.microsoft.com "KMS client activation and product
# keys"): for volume-licence media that ask for a key. Evaluation media need no key at all.
KMS_CLIENT_KEYS: dict[tuple[str, str], str] = {
    ("2019", "standard"): "N69G4-B89J2-4G8F4-WWYCC-J464C",
    ("2019", "datacenter"): "WMDGN-G9PQG-XVVXX-R3X43-63DFG",
    ("2022", "standard"): "VDYBN-27WPP-V4HQT-9VMD4-VMK7H",
    ("2022", "datacenter"): "WX4NM-KYWYW-QJJR4-XV3QB-6VM33",
    ("2025", "standard"): "TVRH6-WHNXV-R9WG3-9XRFY-MY832",
    ("2025", "datacenter"): "D764K-2NDRG-47T6Q-P8T8W-YP6DF",
}
STATE_DIR = r"C:\hyperlab"
MEDIA_DIR = "hyperlab"  # folder of the answer media holding scripts and OEM files
SETUPCOMPLETE = r"C:\Windows\Setup\Scripts\SetupComplete.cmd"


@dataclass(frozen=True)
class Locale:
    """Setup's language settings. The UI language must be one the media carry (evaluation media: en-US)."""

    ui_language: str = "en-US"
    input_locale: str = "0409:00000409"
    system_locale: str = "en-US"
    user_locale: str = "en-US"
    time_zone: str = "UTC"


LOCALES: dict[str, Locale] = {
    "en-US": Locale(),
    # Korean keyboard (00000412) first, US second; Korean formats and time; English Setup UI.
    "ko-KR": Locale("en-US", "0412:00000412;0409:00000409", "ko-KR", "ko-KR", "Korea Standard Time"),
}


def encode_password(password: str, field_name: Literal["AdministratorPassword", "Password"]) -> str:
    """Windows' hidden-password form: base64(UTF-16LE(password + field name))."""
    return base64.b64encode((password + field_name).encode("utf-16-le")).decode("ascii")


def decode_password(value: str, field_name: str) -> str:
    text = base64.b64decode(value).decode("utf-16-le")
    if not text.endswith(field_name):
        raise ValueError(f"not an encoded {field_name}")
    return text[: -len(field_name)]


# ------------------------------------------------------------------------- building blocks


def _el(parent: ET.Element, tag: str, text: str | None = None, *, action: str | None = None,
        key: str | None = None) -> ET.Element:
    attrs = {}
    if action:
        attrs[f"{{{WCM}}}action"] = action
    if key is not None:
        attrs[f"{{{WCM}}}keyValue"] = key
    element = ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _root() -> ET.Element:
    return ET.Element(f"{{{NS}}}unattend")


def _settings(root: ET.Element, pass_name: str) -> ET.Element:
    return ET.SubElement(root, f"{{{NS}}}settings", {"pass": pass_name})


def _component(settings: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(settings, f"{{{NS}}}component", {
        "name": name, "processorArchitecture": ARCH, "publicKeyToken": PUBLIC_KEY_TOKEN,
        "language": "neutral", "versionScope": "nonSxS",
    })


def _to_string(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _password(parent: ET.Element, tag: str, password: str, field_name: Literal["AdministratorPassword", "Password"]) -> None:
    holder = _el(parent, tag)
    _el(holder, "Value", encode_password(password, field_name))
    _el(holder, "PlainText", "false")


def _international(settings: ET.Element, locale: Locale, winpe: bool) -> None:
    comp = _component(settings, "Microsoft-Windows-International-Core-WinPE" if winpe
                      else "Microsoft-Windows-International-Core")
    if winpe:
        _el(_el(comp, "SetupUILanguage"), "UILanguage", locale.ui_language)
    _el(comp, "InputLocale", locale.input_locale)
    _el(comp, "SystemLocale", locale.system_locale)
    _el(comp, "UILanguage", locale.ui_language)
    _el(comp, "UserLocale", locale.user_locale)


def _oobe(shell: ET.Element) -> None:
    oobe = _el(shell, "OOBE")
    for name in ("HideEULAPage", "HideLocalAccountScreen", "HideOEMRegistrationScreen",
                 "HideOnlineAccountScreens", "HideWirelessSetupInOOBE"):
        _el(oobe, name, "true")
    _el(oobe, "NetworkLocation", "Work")
    _el(oobe, "ProtectYourPC", "3")


def _remote_desktop(settings: ET.Element) -> None:
    _el(_component(settings, "Microsoft-Windows-TerminalServices-LocalSessionManager"), "fDenyTSConnections", "false")
    rules = _el(_component(settings, "Networking-MPSSVC-Svc"), "FirewallGroups")
    group = _el(rules, "FirewallGroup", action="add", key="RemoteDesktop")
    _el(group, "Active", "true")
    _el(group, "Group", "@FirewallAPI.dll,-28752")  # "Remote Desktop", named language-neutrally
    _el(group, "Profile", "all")


def find_on_media_command(relative: str, run: str) -> str:
    """A cmd line that runs `run` (with %d: the drive) for the first CD drive holding `relative`.

    Drive letters of CDs are not known in advance, so every letter is tried; `goto`-free so it
    fits one CommandLine.
    """
    letters = " ".join(chr(c) for c in range(ord("D"), ord("Z") + 1))
    return f'cmd.exe /c "for %d in ({letters}) do @if exist %d:\\{relative} ({run})"'


# ---------------------------------------------------------------------- golden image build


@dataclass(frozen=True)
class InstallAnswer:
    version: WindowsVersion
    image_index: int  # the image of install.wim/esd to install (1-based)
    admin_password: str
    locale: Locale = field(default_factory=Locale)
    product_key: str | None = None
    computer_name: str = "HLGOLDEN"  # replaced by each node's own name after sysprep


def driver_paths(version: str, letters: tuple[str, ...] = CD_LETTERS) -> list[str]:
    """Every path the virtio drivers of `version` may be at, in the layout `<driver>\\<os>\\amd64`."""
    return [f"{letter}:\\{driver}\\{folder}\\amd64" for driver in VIRTIO_DRIVERS
            for folder in VIRTIO_FOLDERS[version] for letter in letters]


def autounattend_xml(answer: InstallAnswer) -> str:
    root = _root()
    pe = _settings(root, "windowsPE")
    _international(pe, answer.locale, winpe=True)
    drivers = _el(_component(pe, "Microsoft-Windows-PnpCustomizationsWinPE"), "DriverPaths")
    for i, path in enumerate(driver_paths(answer.version), start=1):
        _el(_el(drivers, "PathAndCredentials", action="add", key=str(i)), "Path", path)
    setup = _component(pe, "Microsoft-Windows-Setup")
    _disk(setup)
    image = _el(_el(setup, "ImageInstall"), "OSImage")
    source = _el(_el(image, "InstallFrom"), "MetaData", action="add")
    _el(source, "Key", "/IMAGE/INDEX")
    _el(source, "Value", str(answer.image_index))
    target = _el(image, "InstallTo")
    _el(target, "DiskID", "0")
    _el(target, "PartitionID", "3")
    _el(image, "WillShowUI", "OnError")
    user = _el(setup, "UserData")
    _el(user, "AcceptEula", "true")
    _el(user, "FullName", "hyperlab")
    _el(user, "Organization", "hyperlab")
    if answer.product_key:
        key = _el(user, "ProductKey")
        _el(key, "Key", answer.product_key)
        _el(key, "WillShowUI", "OnError")

    specialize = _settings(root, "specialize")
    shell = _component(specialize, "Microsoft-Windows-Shell-Setup")
    _el(shell, "ComputerName", answer.computer_name)
    _el(shell, "TimeZone", answer.locale.time_zone)
    _remote_desktop(specialize)

    oobe = _settings(root, "oobeSystem")
    _international(oobe, answer.locale, winpe=False)
    shell = _component(oobe, "Microsoft-Windows-Shell-Setup")
    accounts = _el(shell, "UserAccounts")
    _password(accounts, "AdministratorPassword", answer.admin_password, "AdministratorPassword")
    logon = _el(shell, "AutoLogon")
    _password(logon, "Password", answer.admin_password, "Password")
    _el(logon, "Enabled", "true")
    _el(logon, "LogonCount", "1")
    _el(logon, "Username", "Administrator")
    commands = _el(shell, "FirstLogonCommands")
    command = _el(commands, "SynchronousCommand", action="add")
    _el(command, "Order", "1")
    _el(command, "Description", "hyperlab: guest tools, guest agent, WinRM")
    _el(command, "CommandLine", find_on_media_command(
        f"{MEDIA_DIR}\\build.ps1",
        f"powershell.exe -NoProfile -ExecutionPolicy Bypass -File %d:\\{MEDIA_DIR}\\build.ps1"))
    _oobe(shell)
    _el(shell, "TimeZone", answer.locale.time_zone)
    return _to_string(root)


def _disk(setup: ET.Element) -> None:
    """UEFI GPT layout: EFI system partition, MSR, Windows on the rest (partition 3)."""
    disk = _el(_el(setup, "DiskConfiguration"), "Disk", action="add")
    _el(disk, "DiskID", "0")
    _el(disk, "WillWipeDisk", "true")
    create = _el(disk, "CreatePartitions")
    for order, kind, size in ((1, "EFI", "100"), (2, "MSR", "16"), (3, "Primary", None)):
        part = _el(create, "CreatePartition", action="add")
        _el(part, "Order", str(order))
        _el(part, "Type", kind)
        if size is None:
            _el(part, "Extend", "true")
        else:
            _el(part, "Size", size)
    modify = _el(disk, "ModifyPartitions")
    for order, fmt, label, letter in ((1, "FAT32", "System", None), (2, None, None, None), (3, "NTFS", "Windows", "C")):
        part = _el(modify, "ModifyPartition", action="add")
        _el(part, "Order", str(order))
        _el(part, "PartitionID", str(order))
        if fmt:
            _el(part, "Format", fmt)
            _el(part, "Label", label)
        if letter:
            _el(part, "Letter", letter)


# ------------------------------------------------------------------------ node specialization


@dataclass(frozen=True)
class NodeNic:
    mac: str  # 52:54:00:..
    address: IPv4Interface | None  # None: DHCP or the student's to set
    gateway: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()


@dataclass(frozen=True)
class NodeAnswer:
    computer_name: str
    admin_password: str
    nics: tuple[NodeNic, ...] = ()
    dns_suffix: str | None = None
    locale: Locale = field(default_factory=Locale)


def windows_mac(mac: str) -> str:
    """Windows names an interface by its MAC written 52-54-00-AA-BB-CC."""
    return mac.replace(":", "-").upper()


def node_unattend_xml(answer: NodeAnswer) -> str:
    root = _root()
    specialize = _settings(root, "specialize")
    shell = _component(specialize, "Microsoft-Windows-Shell-Setup")
    _el(shell, "ComputerName", answer.computer_name)
    _el(shell, "TimeZone", answer.locale.time_zone)
    _addresses(specialize, answer)
    _remote_desktop(specialize)
    run = _el(_component(specialize, "Microsoft-Windows-Deployment"), "RunSynchronous")
    command = _el(run, "RunSynchronousCommand", action="add")
    _el(command, "Order", "1")
    _el(command, "Description", "hyperlab: first-boot script runs once setup completes")
    # SetupComplete.cmd runs as SYSTEM after setup, before the first logon: no auto-logon needed.
    _el(command, "Path", find_on_media_command(
        f"{MEDIA_DIR}\\SetupComplete.cmd",
        f"mkdir C:\\Windows\\Setup\\Scripts 2>nul & copy /y %d:\\{MEDIA_DIR}\\SetupComplete.cmd {SETUPCOMPLETE}"))

    oobe = _settings(root, "oobeSystem")
    _international(oobe, answer.locale, winpe=False)
    shell = _component(oobe, "Microsoft-Windows-Shell-Setup")
    _password(_el(shell, "UserAccounts"), "AdministratorPassword", answer.admin_password, "AdministratorPassword")
    _oobe(shell)
    _el(shell, "TimeZone", answer.locale.time_zone)
    return _to_string(root)


def _addresses(specialize: ET.Element, answer: NodeAnswer) -> None:
    static = [nic for nic in answer.nics if nic.address is not None]
    if not static:
        return
    interfaces = _el(_component(specialize, "Microsoft-Windows-TCPIP"), "Interfaces")
    for nic in static:
        assert nic.address is not None
        interface = _el(interfaces, "Interface", action="add")
        v4 = _el(interface, "Ipv4Settings")
        _el(v4, "DhcpEnabled", "false")
        _el(interface, "Identifier", windows_mac(nic.mac))
        _el(_el(interface, "UnicastIpAddresses"), "IpAddress", str(nic.address), action="add", key="1")
        if nic.gateway is not None:
            route = _el(_el(interface, "Routes"), "Route", action="add")
            _el(route, "Identifier", "0")
            _el(route, "Prefix", "0.0.0.0/0")
            _el(route, "NextHopAddress", str(nic.gateway))
    dns = _component(specialize, "Microsoft-Windows-DNS-Client")
    if answer.dns_suffix:
        _el(dns, "DNSDomain", answer.dns_suffix)
    dns_interfaces = _el(dns, "Interfaces")
    for nic in static:
        interface = _el(dns_interfaces, "Interface", action="add")
        _el(interface, "Identifier", windows_mac(nic.mac))
        if nic.dns:
            servers = _el(interface, "DNSServerSearchOrder")
            for i, server in enumerate(nic.dns, start=1):
                _el(servers, "IpAddress", str(server), action="add", key=str(i))
        if answer.dns_suffix:
            _el(interface, "DNSDomain", answer.dns_suffix)
