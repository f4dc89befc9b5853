"""Read the file tree of an ISO image, pure Python: ISO 9660 (with Joliet) and UDF.

Why a reader of our own: Microsoft's install media are UDF; their ISO 9660 side holds only a
README (oscdimg `-u2`), so `xorriso`/`isoinfo` see no `sources/install.wim`. This reader walks UDF
1.02-2.01 (what oscdimg and genisoimage write) and falls back to Joliet/ISO 9660, reading only
directories and the few KiB asked for: checking a 5 GiB ISO costs milliseconds.

It also reads the XML a WIM/ESD carries (its images: index, name, edition, installation type) so
that `--edition standard` picks the right image index of the user's media.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SECTOR = 2048
MAX_ENTRIES = 200_000  # a bound against looping or hostile images


class IsoError(Exception):
    """The file is not a readable ISO image; the message is one line."""


class NotWindowsMedia(IsoError):
    pass


@dataclass(frozen=True)
class FileRef:
    size: int
    extents: tuple[tuple[int, int], ...]  # (byte offset in the image, length)
    inline: bytes | None = None  # UDF files small enough to live inside their entry
    is_dir: bool = False


class IsoImage:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._f: BinaryIO = open(self.path, "rb")
        except OSError as exc:
            raise IsoError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self.size = self.path.stat().st_size
        self._files: dict[str, FileRef] | None = None
        self.filesystem = ""

    def __enter__(self) -> IsoImage:
        return self

    def __exit__(self, *_: object) -> None:
        self._f.close()

    def read_at(self, offset: int, size: int) -> bytes:
        if offset < 0 or offset + size > self.size:
            raise IsoError(f"{self.path} is truncated or damaged (read past its end at {offset})")
        self._f.seek(offset)
        return self._f.read(size)

    # ------------------------------------------------------------------------ listing
    def files(self, prefer: str = "udf") -> dict[str, FileRef]:
        """Lower-case POSIX paths (no leading slash) -> FileRef, directories included."""
        if self._files is None:
            readers = [self._udf, self._iso9660] if prefer == "udf" else [self._iso9660, self._udf]
            for reader in readers:
                found = reader()
                if found:
                    self._files = found
                    break
            else:
                raise IsoError(f"{self.path} is not an ISO image (no ISO 9660 or UDF file system found)")
        return self._files

    def read(self, ref: FileRef, offset: int = 0, size: int | None = None) -> bytes:
        size = ref.size - offset if size is None else min(size, ref.size - offset)
        if ref.inline is not None:
            return ref.inline[offset: offset + size]
        out = bytearray()
        pos = 0
        for start, length in ref.extents:
            if size <= len(out):
                break
            lo, hi = max(offset, pos), min(offset + size, pos + length)
            if lo < hi:
                out += self.read_at(start + lo - pos, hi - lo)
            pos += length
        return bytes(out)

    # ------------------------------------------------------------------------ ISO 9660
    def _iso9660(self) -> dict[str, FileRef]:
        primary = joliet = None
        for sector in range(16, 64):
            if (sector + 1) * SECTOR > self.size:
                break
            vd = self.read_at(sector * SECTOR, SECTOR)
            if vd[1:6] != b"CD001":
                break
            if vd[0] == 1 and primary is None:
                primary = vd
            elif vd[0] == 2 and vd[88:91] in (b"%/@", b"%/C", b"%/E"):
                joliet = vd
            elif vd[0] == 255:
                break
        chosen = joliet or primary
        if chosen is None:
            return {}
        self.filesystem = "joliet" if joliet else "iso9660"
        files: dict[str, FileRef] = {}
        self._iso_dir(chosen[156:190], "", joliet is not None, files, set())
        return files

    def _iso_dir(self, record: bytes, prefix: str, joliet: bool, files: dict[str, FileRef], seen: set[int]) -> None:
        extent, size = struct.unpack_from("<I", record, 2)[0], struct.unpack_from("<I", record, 10)[0]
        if extent in seen:
            return
        seen.add(extent)
        data = self.read_at(extent * SECTOR, size)
        pos = 0
        pending: dict[str, list[tuple[int, int]]] = {}
        while pos < len(data):
            length = data[pos]
            if length == 0:  # records never cross a sector: the rest of this one is padding
                pos = (pos // SECTOR + 1) * SECTOR
                continue
            rec = data[pos: pos + length]
            pos += length
            name_len = rec[32]
            raw = rec[33: 33 + name_len]
            if raw in (b"\x00", b"\x01"):
                continue
            name = raw.decode("utf-16-be", "replace") if joliet else raw.decode("ascii", "replace")
            name = name.split(";")[0].rstrip(".").lower()
            flags = rec[25]
            path = f"{prefix}{name}"
            if flags & 0x02:
                files[path] = FileRef(0, (), is_dir=True)
                self._iso_dir(rec, path + "/", joliet, files, seen)
                continue
            pending.setdefault(path, []).append(
                (struct.unpack_from("<I", rec, 2)[0] * SECTOR, struct.unpack_from("<I", rec, 10)[0]))
            if not flags & 0x80:  # last (or only) extent of a multi-extent file
                extents = tuple(pending.pop(path))
                files[path] = FileRef(sum(n for _, n in extents), extents)
            if len(files) > MAX_ENTRIES:
                raise IsoError(f"{self.path}: more than {MAX_ENTRIES} files; not install media")

    # ------------------------------------------------------------------------ UDF
    def _udf(self) -> dict[str, FileRef]:
        if not self._has_nsr():
            return {}
        if self.size < 257 * SECTOR:
            return {}
        avdp = self.read_at(256 * SECTOR, SECTOR)
        if _tag(avdp) != 2:
            return {}
        vds_len, vds_loc = struct.unpack_from("<II", avdp, 16)
        partitions: dict[int, int] = {}
        block = SECTOR
        fsd: tuple[int, int] | None = None
        part_maps: list[int] = []
        for i in range(min(vds_len // SECTOR, 64)):
            d = self.read_at((vds_loc + i) * SECTOR, SECTOR)
            tag = _tag(d)
            if tag == 5:  # partition descriptor
                partitions[struct.unpack_from("<H", d, 22)[0]] = struct.unpack_from("<I", d, 188)[0]
            elif tag == 6:  # logical volume descriptor
                block = struct.unpack_from("<I", d, 212)[0]
                lbn, ref = struct.unpack_from("<IH", d, 252)
                fsd = (lbn, ref)
                count = struct.unpack_from("<I", d, 268)[0]
                pos = 440
                for _ in range(count):
                    kind, length = d[pos], d[pos + 1]
                    if kind != 1:
                        raise IsoError(f"{self.path}: UDF with a non-physical partition map is not supported")
                    part_maps.append(struct.unpack_from("<H", d, pos + 4)[0])
                    pos += length
            elif tag == 8:
                break
        if fsd is None or block != SECTOR or not part_maps:
            return {}
        self._udf_starts = [partitions[number] for number in part_maps]
        self.filesystem = "udf"
        fsd_block = self._udf_block(fsd[0], fsd[1])
        if _tag(fsd_block) != 256:
            raise IsoError(f"{self.path}: UDF file set descriptor missing")
        root_lbn, root_ref = struct.unpack_from("<IH", fsd_block, 404)
        files: dict[str, FileRef] = {}
        self._udf_dir(root_lbn, root_ref, "", files, set())
        return files

    def _has_nsr(self) -> bool:
        for sector in range(16, 64):
            if (sector + 1) * SECTOR > self.size:
                return False
            ident = self.read_at(sector * SECTOR + 1, 5)
            if ident in (b"NSR02", b"NSR03"):
                return True
            if ident not in (b"CD001", b"BEA01", b"BOOT2", b"CDW02", b"TEA01"):
                return False
        return False

    def _udf_block(self, lbn: int, ref: int) -> bytes:
        return self.read_at((self._udf_starts[ref] + lbn) * SECTOR, SECTOR)

    def _udf_entry(self, lbn: int, ref: int) -> FileRef:
        fe = self._udf_block(lbn, ref)
        tag = _tag(fe)
        if tag == 261:
            length, l_ea, l_ad, base = struct.unpack_from("<Q", fe, 56)[0], *struct.unpack_from("<II", fe, 168), 176
        elif tag == 266:
            length, l_ea, l_ad, base = struct.unpack_from("<Q", fe, 56)[0], *struct.unpack_from("<II", fe, 208), 216
        else:
            raise IsoError(f"{self.path}: damaged UDF file entry (tag {tag})")
        is_dir = fe[27] == 4
        kind = struct.unpack_from("<H", fe, 34)[0] & 7
        ads = fe[base + l_ea: base + l_ea + l_ad]
        if kind == 3:
            return FileRef(length, (), inline=ads[:length], is_dir=is_dir)
        extents = []
        step = 8 if kind == 0 else 16
        for pos in range(0, len(ads) - step + 1, step):
            raw_len, where = struct.unpack_from("<II", ads, pos)
            part = ref if kind == 0 else struct.unpack_from("<H", ads, pos + 8)[0]
            if raw_len >> 30 == 3:
                raise IsoError(f"{self.path}: UDF allocation descriptor continuation is not supported")
            if raw_len & 0x3FFFFFFF == 0:
                break
            extents.append(((self._udf_starts[part] + where) * SECTOR, raw_len & 0x3FFFFFFF))
        return FileRef(length, tuple(extents), is_dir=is_dir)

    def _udf_dir(self, lbn: int, ref: int, prefix: str, files: dict[str, FileRef], seen: set[tuple[int, int]]) -> None:
        if (lbn, ref) in seen:
            return
        seen.add((lbn, ref))
        entry = self._udf_entry(lbn, ref)
        data = self.read(entry)
        pos = 0
        while pos + 38 <= len(data):
            if _tag(data[pos:pos + 16]) != 257:
                break
            chars, l_fi = data[pos + 18], data[pos + 19]
            child_lbn, child_ref = struct.unpack_from("<IH", data, pos + 24)
            l_iu = struct.unpack_from("<H", data, pos + 36)[0]
            raw = data[pos + 38 + l_iu: pos + 38 + l_iu + l_fi]
            pos += (38 + l_iu + l_fi + 3) & ~3
            if chars & 0x08 or chars & 0x04 or not raw:  # parent entry, deleted
                continue
            name = (raw[1:].decode("utf-16-be", "replace") if raw[0] == 16 else raw[1:].decode("latin-1")).lower()
            path = f"{prefix}{name}"
            child = self._udf_entry(child_lbn, child_ref)
            files[path] = child
            if len(files) > MAX_ENTRIES:
                raise IsoError(f"{self.path}: more than {MAX_ENTRIES} files; not install media")
            if child.is_dir:
                self._udf_dir(child_lbn, child_ref, path + "/", files, seen)


def _tag(block: bytes) -> int:
    """Descriptor tag identifier, or -1 when the tag checksum does not match (not a descriptor)."""
    if len(block) < 16:
        return -1
    if (sum(block[0:4]) + sum(block[5:16])) & 0xFF != block[4]:
        return -1
    return int(struct.unpack_from("<H", block, 0)[0])


# ---------------------------------------------------------------------------- WIM metadata


@dataclass(frozen=True)
class WimImage:
    index: int
    name: str
    edition_id: str  # ServerStandard, ServerDatacenterEval, ...
    installation_type: str  # "Server" (Desktop Experience) or "Server Core"


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
    """The image index for `edition`: a name of EDITIONS, an index number, or an image's exact NAME."""
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
        if image.name.lower() == edition.lower():
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
    return "; ".join(f"{i.index} {i.name!r}" for i in images) or "none"


def iso_label_ok(label: str) -> bool:
    return bool(re.fullmatch(r"[A-Z0-9_]{1,32}", label))
