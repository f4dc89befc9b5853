"""Signed evidence: a run's result, HMAC-signed with the instructor's key and bound to domain UUIDs.

The key lives on the host (0600, never copied into a guest), so a student who hands in an
evidence file cannot change a score, and cannot pass off another lab's run as theirs: the file
names the libvirt domain UUIDs it was taken from, and `lab grade --verify` compares them with
the student's deployed domains when they are reachable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperlab.host.files import write_atomic

DEFAULT_KEY = Path("/var/lib/hyperlab/grading.key")
KEY_ENV = "HYPERLAB_GRADING_KEY"
ALGORITHM = "HMAC-SHA256"


class EvidenceError(Exception):
    """An evidence file that cannot be read or verified; the message says why."""


def key_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(KEY_ENV) or DEFAULT_KEY)


def load_key(path: Path, *, create: bool) -> bytes:
    """The instructor key; made (32 random bytes, mode 0600) the first time a run signs."""
    try:
        key = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        if not create:
            raise EvidenceError(f"no grading key at {path}; the key that signed the file is needed "
                                f"(--key FILE or {KEY_ENV})") from None
        key = secrets.token_bytes(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, key.hex() + "\n", mode=0o600)
    except ValueError:
        raise EvidenceError(f"{path} is not a grading key (64 hex digits expected)") from None
    if len(key) < 16:
        raise EvidenceError(f"{path}: a grading key needs at least 16 bytes")
    return key


def key_id(key: bytes) -> str:
    """Names the key in a file without revealing it."""
    return hashlib.sha256(b"hyperlab-key-id:" + key).hexdigest()[:16]


def _canonical(document: dict[str, Any]) -> bytes:
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def sign(document: dict[str, Any], key: bytes) -> dict[str, Any]:
    mac = hmac.new(key, _canonical(document), hashlib.sha256).hexdigest()
    return {**document, "signature": {"alg": ALGORITHM, "key_id": key_id(key), "value": mac}}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: list[str]


def verify(document: dict[str, Any], key: bytes, live_domains: dict[str, str] | None) -> Verdict:
    """Signature first (was the file changed?), then the binding (is it this student's lab?).

    `live_domains` maps node names to the UUIDs of the student's domains as deployed now, or is
    None when their lab cannot be looked at from here.
    """
    signature = document.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != ALGORITHM:
        return Verdict(False, ["not signed: the file has no HMAC-SHA256 signature"])
    if signature.get("key_id") != key_id(key):
        return Verdict(False, [f"signed with another key (key id {signature.get('key_id')}, this key is {key_id(key)})"])
    expected = hmac.new(key, _canonical(document), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("value", ""))):
        return Verdict(False, ["signature mismatch: the file was changed after it was signed"])
    lines = [f"signature ok (key id {key_id(key)}): {document.get('lab')} instance {document.get('instance')}, "
             f"score {document.get('score')}/{document.get('max')}, finished {document.get('finished')}"]
    recorded = document.get("domains") or {}
    if live_domains is None:
        lines.append("domains not compared: the lab is not deployed here; recorded UUIDs: "
                     + ", ".join(f"{n}={u}" for n, u in sorted(recorded.items())))
        return Verdict(True, lines)
    differing = sorted(n for n in set(recorded) | set(live_domains) if recorded.get(n) != live_domains.get(n))
    if differing:
        detail = "; ".join(f"{n}: file {recorded.get(n, 'none')}, deployed {live_domains.get(n, 'none')}" for n in differing)
        return Verdict(False, [*lines, f"domain UUIDs differ from the deployed lab: {detail}"])
    return Verdict(True, [*lines, f"bound to the deployed domains ({len(recorded)} UUIDs match)"])


def read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EvidenceError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"{path}: not an evidence file ({exc})") from None
    if not isinstance(data, dict) or "lab" not in data or "steps" not in data:
        raise EvidenceError(f"{path}: not an evidence file (no lab and steps)")
    return data
