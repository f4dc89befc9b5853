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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hyperlab.grading.document import DocumentError, RunDocument
from hyperlab.host.files import write_atomic

DEFAULT_KEY = Path("/var/lib/hyperlab/grading.key")
KEY_ENV = "HYPERLAB_GRADING_KEY"
ALGORITHM = "HMAC-SHA256"
MAX_EVIDENCE_BYTES = 16 << 20  # a class run of 30 steps with its evidence is ~100 KiB


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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, key.hex() + "\n", mode=0o600)
        except OSError as exc:
            raise EvidenceError(f"cannot make the grading key {path}: {exc.strerror or exc} (run as root, or give "
                                f"--key FILE or {KEY_ENV})") from None
    except ValueError:
        raise EvidenceError(f"{path} is not a grading key (64 hex digits expected)") from None
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read the grading key ({exc.strerror or exc})") from None
    if len(key) < 16:
        raise EvidenceError(f"{path}: a grading key needs at least 16 bytes")
    return key


def key_id(key: bytes) -> str:
    """Names the key in a file without revealing it."""
    return hashlib.sha256(b"hyperlab-key-id:" + key).hexdigest()[:16]


def _canonical(document: dict[str, Any]) -> bytes:
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def sign(document: RunDocument, key: bytes) -> RunDocument:
    mac = hmac.new(key, _canonical(replace(document, signature=None).to_json()), hashlib.sha256).hexdigest()
    return replace(document, signature={"alg": ALGORITHM, "key_id": key_id(key), "value": mac})


def write(path: Path, document: RunDocument, key: bytes) -> RunDocument:
    """Sign `document` and write it atomically to `path`; returns the signed document."""
    signed = sign(document, key)
    write_atomic(path, json.dumps(signed.to_json(), ensure_ascii=False, indent=1))
    return signed


def signature_problem(data: dict[str, Any], key: bytes) -> str | None:
    """Why the file's signature does not hold (None: it was signed with `key` and not changed since)."""
    signature = data.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != ALGORITHM:
        return "not signed: the file has no HMAC-SHA256 signature"
    if signature.get("key_id") != key_id(key):
        return f"signed with another key (key id {signature.get('key_id')}, this key is {key_id(key)})"
    expected = hmac.new(key, _canonical(data), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("value", ""))):
        return "signature mismatch: the file was changed after it was signed"
    return None


def believe(data: dict[str, Any], key: bytes) -> RunDocument:
    """The document of a file read as JSON, once its signature holds; EvidenceError otherwise."""
    problem = signature_problem(data, key)
    if problem is not None:
        raise EvidenceError(problem)
    try:
        return RunDocument.from_json(data)
    except DocumentError as exc:
        raise EvidenceError(str(exc)) from None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: list[str]


def verify(data: dict[str, Any], key: bytes,
           live_domains: Callable[[RunDocument], dict[str, str] | None]) -> Verdict:
    """Signature first (was the file changed?), then the binding (is it this student's lab?).

    Nothing of the file is believed before its signature holds: `live_domains` (the UUIDs of the
    student's domains as deployed now, or None when their lab cannot be looked at from here) is only
    asked once it does, with the signed document.
    """
    try:
        document = believe(data, key)
    except EvidenceError as exc:
        return Verdict(False, [str(exc)])
    lines = [f"signature ok (key id {key_id(key)}): {document.lab} instance {document.instance}, "
             f"score {document.score:g}/{document.max}, finished {document.finished}"]
    recorded = document.domains
    live = live_domains(document)
    if live is None:
        lines.append("domains not compared: the lab is not deployed here; recorded UUIDs: "
                     + ", ".join(f"{n}={u}" for n, u in sorted(recorded.items())))
        return Verdict(True, lines)
    differing = sorted(n for n in set(recorded) | set(live) if recorded.get(n) != live.get(n))
    if differing:
        detail = "; ".join(f"{n}: file {recorded.get(n, 'none')}, deployed {live.get(n, 'none')}" for n in differing)
        return Verdict(False, [*lines, f"domain UUIDs differ from the deployed lab: {detail}"])
    return Verdict(True, [*lines, f"bound to the deployed domains ({len(recorded)} UUIDs match)"])


def read(path: Path) -> dict[str, Any]:
    """An evidence file as JSON, not yet believed: `verify` or `believe` it."""
    try:
        if path.stat().st_size > MAX_EVIDENCE_BYTES:
            raise EvidenceError(f"{path}: {path.stat().st_size >> 20} MiB is not an evidence file (they are a few KiB)")
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EvidenceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EvidenceError(f"{path}: is a folder; give the evidence file inside it") from None
    except RecursionError:
        raise EvidenceError(f"{path}: not an evidence file (nested too deeply)") from None
    except (OSError, ValueError) as exc:
        raise EvidenceError(f"{path}: not an evidence file ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict) or "lab" not in data or "steps" not in data:
        raise EvidenceError(f"{path}: not an evidence file (no lab and steps)")
    return data
