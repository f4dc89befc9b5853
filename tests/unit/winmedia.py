"""Windows install media for the tests: a WIM's header and image list, and ISOs laid out like
Microsoft's (made with `genisoimage -udf`), from an invented image list or the recorded one."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDED_XML = ROOT / "tests" / "data" / "recorded" / "windows" / "server-2022-eval-images.xml"

IMAGES_XML = """<WIM><TOTALBYTES>1</TOTALBYTES>
<IMAGE INDEX="1"><NAME>Windows Server 2022 SERVERSTANDARDCORE</NAME>
 <WINDOWS><EDITIONID>ServerStandardEval</EDITIONID><INSTALLATIONTYPE>Server Core</INSTALLATIONTYPE></WINDOWS></IMAGE>
<IMAGE INDEX="2"><NAME>Windows Server 2022 SERVERSTANDARD</NAME>
 <WINDOWS><EDITIONID>ServerStandardEval</EDITIONID><INSTALLATIONTYPE>Server</INSTALLATIONTYPE></WINDOWS></IMAGE>
<IMAGE INDEX="3"><NAME>Windows Server 2022 SERVERDATACENTERCORE</NAME>
 <WINDOWS><EDITIONID>ServerDatacenterEval</EDITIONID><INSTALLATIONTYPE>Server Core</INSTALLATIONTYPE></WINDOWS></IMAGE>
<IMAGE INDEX="4"><NAME>Windows Server 2022 SERVERDATACENTER</NAME>
 <WINDOWS><EDITIONID>ServerDatacenterEval</EDITIONID><INSTALLATIONTYPE>Server</INSTALLATIONTYPE></WINDOWS></IMAGE>
</WIM>"""


def fake_wim(images_xml: str = IMAGES_XML) -> bytes:
    """A WIM's header and its XML image list (rhXmlData at byte 72), and no image data."""
    xml = "\ufeff".encode("utf-16-le") + images_xml.encode("utf-16-le")
    header = bytearray(208)
    header[:8] = b"MSWIM\x00\x00\x00"
    struct.pack_into("<I", header, 8, 208)
    header[72:79] = len(xml).to_bytes(7, "little")
    struct.pack_into("<QQ", header, 80, 208 + 8192, len(xml))
    return bytes(header) + b"\x00" * 8192 + xml


def windows_like_iso(tmp_path: Path, images_xml: str = IMAGES_XML) -> Path:
    """Made as oscdimg lays out Microsoft's media (UDF beside ISO 9660); not bootable."""
    root = tmp_path / "media"
    (root / "sources").mkdir(parents=True)
    (root / "efi" / "microsoft" / "boot").mkdir(parents=True)
    (root / "sources" / "install.wim").write_bytes(fake_wim(images_xml))
    (root / "setup.exe").write_bytes(b"MZ")
    iso = tmp_path / "win.iso"
    subprocess.run(["genisoimage", "-quiet", "-udf", "-J", "-o", str(iso), str(root)], check=True)
    return iso


def recorded_images_xml() -> str:
    """The image list of the Windows Server 2022 evaluation ISO's install.wim, as recorded."""
    xml = RECORDED_XML.read_text(encoding="utf-8")
    return xml[xml.index("<WIM>"):]
