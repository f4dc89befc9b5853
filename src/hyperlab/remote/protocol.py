"""What the instructor's hyperlab and a class host's hyperlab say to each other, besides running
ordinary `lab` commands there: the host's hello, and the version both must share.

The hello is one JSON object from `lab class host hello`. It is a host's word, so it is read like any
other input: bounded, every field of its type, every name of its pattern, or the host is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hyperlab
from hyperlab.core.catalog import IMAGE_NAME, SHA256

MAX_HELLO_BYTES = 1 << 20
# what the package is made of (sources and their data); an editor's swap file or a stray log is not code
CODE_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".js", ".css", ".S", ".ps1", ".sh", ".xml", ".txt", ".md", ".j2"}
PACKAGE = Path(hyperlab.__file__).resolve().parent
_VERSION_RE = re.compile(r"[A-Za-z0-9.+_-]{1,40}")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9._-]{1,253}")


class ProtocolError(Exception):
    """A host's answer that is not what hyperlab sends; the message says what was wrong."""


def fingerprint(package: Path = PACKAGE) -> str:
    """The code that runs: every file of the package (sources and their data), hashed. Two hosts
    with the same version string but other code (a checkout with changes) differ here."""
    h = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in CODE_SUFFIXES
                       and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(package).parts)):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Hello:
    version: str
    build: str
    hostname: str
    bundles: tuple[str, ...] = ()
    images: dict[str, str] = field(default_factory=dict)  # golden image -> its sha256

    @staticmethod
    def here(bundles: list[str], images: dict[str, str], hostname: str) -> Hello:
        return Hello(hyperlab.__version__, fingerprint(), hostname, tuple(bundles), images)

    @staticmethod
    def this_machine() -> Hello:
        """This machine's hyperlab, which every class host must run too."""
        return Hello.here([], {}, socket.gethostname())

    def same_code(self, other: Hello) -> bool:
        return (self.version, self.build) == (other.version, other.build)

    def to_json(self) -> dict[str, Any]:
        return {"hyperlab": self.version, "build": self.build, "hostname": self.hostname,
                "bundles": list(self.bundles), "images": self.images}

    @staticmethod
    def from_bytes(data: bytes) -> Hello:
        if len(data) > MAX_HELLO_BYTES:
            raise ProtocolError(f"a hello of {len(data) >> 10} KiB; a hello is a few hundred bytes")
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            text = data.decode("utf-8", "replace").strip().splitlines()
            raise ProtocolError(f"not a hyperlab hello: {text[0][:120] if text else 'nothing'}") from None
        if not isinstance(raw, dict):
            raise ProtocolError("not a hyperlab hello: not a JSON object")
        version, build, hostname = raw.get("hyperlab"), raw.get("build"), raw.get("hostname")
        bundles, images = raw.get("bundles", []), raw.get("images", {})
        if not (isinstance(version, str) and _VERSION_RE.fullmatch(version)):
            raise ProtocolError("not a hyperlab hello: no hyperlab version")
        if not (isinstance(build, str) and re.fullmatch(r"[0-9a-f]{16}", build)):
            raise ProtocolError("not a hyperlab hello: no build fingerprint")
        if not (isinstance(hostname, str) and _HOSTNAME_RE.fullmatch(hostname)):
            raise ProtocolError("not a hyperlab hello: no host name")
        if not (isinstance(bundles, list) and all(isinstance(b, str) and SHA256.fullmatch(b) for b in bundles)):
            raise ProtocolError("a hello whose bundles are not bundle hashes")
        if not (isinstance(images, dict) and all(isinstance(k, str) and IMAGE_NAME.fullmatch(k) and isinstance(v, str)
                                                 and SHA256.fullmatch(v) for k, v in images.items())):
            raise ProtocolError("a hello whose images are not image names with their sha256")
        return Hello(version, build, hostname, tuple(bundles), dict(images))
