"""Read the file tree of an ISO image (UDF, Joliet or ISO 9660) through pycdlib, and the image list
of the Windows install image on it.

Microsoft's install media are UDF bridge images whose ISO 9660 side holds only a README (oscdimg
`-u2`), so `xorriso`/`isoinfo` see no `sources/install.wim`: the UDF side is read first. pycdlib
replaced a reader of our own (measured in docs/design/host-notes.md: both read UDF 1.02 media
laid out as Microsoft's and pycdlib's UDF 2.60; pycdlib refuses directory loops in hostile images).
Only directories and the few KiB asked for are read: checking a 5 GiB ISO costs milliseconds.

It also reads the XML a WIM/ESD carries (its images: index, name, edition, installation type) so
that `--edition standard` picks the right image index of the user's media.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

MAX_ENTRIES = 200_000  # a bound against hostile images
# what pycdlib raises on a damaged or hostile image besides its own exceptions
_DAMAGED = (PyCdlibException, struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError, OSError)


class IsoError(Exception):
    """The file is not a readable ISO image; the message is one line."""


class NotWindowsMedia(IsoError):
    pass


@dataclass(frozen=True)
class FileRef:
    size: int
    path: str  # the entry's path in its file system, as pycdlib names it
    facet: str  # "udf_path", "joliet_path" or "iso_path": which file system it was listed from
    is_dir: bool = False


def _plain(name: str, facet: str) -> str:
    """ISO 9660 names carry a version (`SETUP.EXE;1`) and a dot when they have no extension."""
    if facet == "iso_path":
        name = name.split(";", 1)[0].rstrip(".")
    return name.lower()


class IsoImage:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._iso = pycdlib.PyCdlib()
        try:
            self.size = self.path.stat().st_size
            self._iso.open(str(self.path))
        except OSError as exc:
            raise IsoError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        except _DAMAGED as exc:
            raise IsoError(f"{self.path} is not an ISO image or is damaged ({_one_line(exc)})") from None
        self._files: dict[str, FileRef] | None = None
        self.filesystem = ""

    def __enter__(self) -> IsoImage:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._iso.close()
        except _DAMAGED:
            pass

    # ------------------------------------------------------------------------ listing
    def files(self, prefer: str = "udf") -> dict[str, FileRef]:
        """Lower-case POSIX paths (no leading slash) -> FileRef, directories included."""
        if self._files is None:
            facets = {"udf": ("udf_path", self._iso.has_udf()), "joliet": ("joliet_path", self._iso.has_joliet()),
                      "iso9660": ("iso_path", True)}
            order = ["udf", "joliet", "iso9660"] if prefer == "udf" else ["joliet", "iso9660", "udf"]
            for name in order:
                facet, present = facets[name]
                found = self._walk(facet) if present else {}
                if found:
                    self._files, self.filesystem = found, name
                    break
            else:
                raise IsoError(f"{self.path} is not an ISO image (no ISO 9660 or UDF file system found)")
        return self._files

    def _walk(self, facet: str) -> dict[str, FileRef]:
        files: dict[str, FileRef] = {}
        try:
            for folder, dirs, names in self._iso.walk(**{facet: "/"}):
                for name, is_dir in [*((d, True) for d in dirs), *((n, False) for n in names)]:
                    if len(files) >= MAX_ENTRIES:
                        raise IsoError(f"{self.path} lists more than {MAX_ENTRIES} entries: not install media")
                    full = f"{folder.rstrip('/')}/{name}"
                    size = 0 if is_dir else self._iso.get_record(**{facet: full}).get_data_length()
                    key = "/".join(_plain(part, facet) for part in full.strip("/").split("/"))
                    files[key] = FileRef(size, full, facet, is_dir)
        except _DAMAGED as exc:
            raise IsoError(f"{self.path} is damaged ({_one_line(exc)})") from None
        return files

    def read(self, ref: FileRef, offset: int = 0, size: int | None = None) -> bytes:
        size = ref.size - offset if size is None else min(size, ref.size - offset)
        try:
            with self._iso.open_file_from_iso(**{ref.facet: ref.path}) as f:
                f.seek(offset)
                return bytes(f.read(max(size, 0)))
        except _DAMAGED as exc:
            raise IsoError(f"{self.path} is truncated or damaged ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


# ---------------------------------------------------------------------------- WIM metadata


@dataclass(frozen=True)
class WimImage:
    index: int
    name: str
    edition_id: str  # ServerStandard, ServerDatacenterEval, ...
    installation_type: str  # "Server" (Desktop Experience) or "Server Core"
    display_name: str = ""  # what Setup shows: "Windows Server 2022 Standard Evaluation (Desktop Experience)"


WIM_MAGIC = b"MSWIM\x00\x00\x00"


def wim_xml_location(header: bytes) -> tuple[int, int]:
    """(offset, size) of the XML resource, from a WIM/ESD header (rhXmlData at byte 72)."""
    if header[:8] != WIM_MAGIC or len(header) < 104:
        raise IsoError("not a WIM/ESD file (bad header)")
    size = int.from_bytes(header[72:79], "little")
    offset = struct.unpack_from("<Q", header, 80)[0]
    return offset, size


def parse_wim_xml(data: bytes) -> list[WimImage]:
    text = data.decode("utf-16-le", "replace").lstrip("\ufeff").rstrip("\x00")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise IsoError(f"the WIM's image list is not readable XML ({exc})") from None
    images = []
    for image in root.findall("IMAGE"):
        index = image.get("INDEX", "0")
        images.append(WimImage(
            index=int(index) if index.isdigit() else 0,
            name=(image.findtext("NAME") or image.findtext("DISPLAYNAME") or "").strip(),
            edition_id=(image.findtext("WINDOWS/EDITIONID") or "").strip(),
            installation_type=(image.findtext("WINDOWS/INSTALLATIONTYPE") or "").strip(),
            display_name=(image.findtext("DISPLAYNAME") or "").strip(),
        ))
    return sorted(images, key=lambda i: i.index)


@dataclass(frozen=True)
class WindowsMedia:
    install_image: str  # sources/install.wim or sources/install.esd
    images: tuple[WimImage, ...]
    filesystem: str


INSTALL_IMAGES = ("sources/install.wim", "sources/install.esd", "sources/install.swm")


def inspect_windows_iso(path: Path | str) -> WindowsMedia:
    """Check that `path` is Windows install media and list its images; one-line IsoError otherwise."""
    path = Path(path)
    with IsoImage(path) as iso:
        files = iso.files()
        found = next((name for name in INSTALL_IMAGES if name in files), None)
        if found is None:
            raise NotWindowsMedia(
                f"{path} is not Windows install media: no sources/install.wim or install.esd on it "
                f"({iso.filesystem} file system, {len(files)} entries)")
        ref = files[found]
        images: tuple[WimImage, ...] = ()
        header = iso.read(ref, 0, 208)
        if header[:8] == WIM_MAGIC:
            offset, size = wim_xml_location(header)
            if 0 < size <= 16 << 20 and offset + size <= ref.size:
                images = tuple(parse_wim_xml(iso.read(ref, offset, size)))
        return WindowsMedia(found, images, iso.filesystem)


# ---------------------------------------------------------------------------- edition choice

EDITIONS = ("standard", "standard-core", "datacenter", "datacenter-core")
# Index of each edition on Microsoft's Server 2016-2025 media (evaluation and volume alike), used
# when the media cannot be read (--dry-run) or their XML says nothing.
DEFAULT_INDEX = {"standard-core": 1, "standard": 2, "datacenter-core": 3, "datacenter": 4}


class EditionError(IsoError):
    pass


def select_image(images: tuple[WimImage, ...] | list[WimImage], edition: str) -> int:
    """The image index for `edition`: a name of EDITIONS, an index number, or an image's NAME or
    DISPLAYNAME (what Setup lists and what people copy), ignoring case."""
    if edition.isdigit():
        index = int(edition)
        if images and index not in {i.index for i in images}:
            raise EditionError(f"no image {index} on the media; there are: {_choices(images)}")
        return index
    if not images:
        if edition not in DEFAULT_INDEX:
            raise EditionError(f"unknown edition {edition!r}; use one of {', '.join(EDITIONS)} or an image index")
        return DEFAULT_INDEX[edition]
    for image in images:
        if edition.strip().lower() in (image.name.lower(), image.display_name.lower()):
            return image.index
    if edition not in DEFAULT_INDEX:
        raise EditionError(f"unknown edition {edition!r}; the media hold: {_choices(images)}")
    family = "datacenter" if edition.startswith("datacenter") else "standard"
    core = edition.endswith("-core")
    for image in images:
        kind = image.installation_type.lower()
        if family in image.edition_id.lower() and kind.startswith("server") and ("core" in kind) == core:
            return image.index
    raise EditionError(f"no {edition} image on the media; they hold: {_choices(images)}")


def _choices(images: tuple[WimImage, ...] | list[WimImage]) -> str:
    return "; ".join(f"{i.index} {i.display_name or i.name!r}" for i in images) or "none"


def iso_label_ok(label: str) -> bool:
    return bool(re.fullmatch(r"[A-Z0-9_]{1,32}", label))
