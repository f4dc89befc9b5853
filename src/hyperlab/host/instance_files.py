"""An instance's folder on this host (`<instances>/<lab>.<instance>/`): what libvirt cannot hold.

    .hyperlab-instance.json   the owner record: whose folder and pool this is (written first)
    secrets.json              the instance's passwords (0600; made by `lab up`, read by checkers)
    id_ed25519, .pub          the instance's SSH key (the ssh channel; the public half goes into guests)
    known_hosts               the guests' pinned SSH host keys
    variables.json            `lab up --var` overrides
    prepared.json             the prepared layer set the instance started from (`lab up` on layers)
    *.qcow2, *.iso            the volumes of the storage pool and the Windows nodes' unattend media

This module reads and writes those files; making secrets and keys is `hyperlab.ops.secrets`.
"""

from __future__ import annotations

import json
from pathlib import Path

from hyperlab.core.plan import Plan
from hyperlab.core.variables import Value, with_overrides
from hyperlab.host.conn import Owner
from hyperlab.host.files import write_atomic

RECORD = ".hyperlab-instance.json"
SECRETS = "secrets.json"
KEY = "id_ed25519"
KNOWN_HOSTS = "known_hosts"
OVERRIDES = "variables.json"
PREPARED = "prepared.json"


class MissingSecrets(Exception):
    """The instance has no secrets file: it was never brought up on this host."""


# ------------------------------------------------------------------------ record


def record_path(folder: Path) -> Path:
    return folder / RECORD


def read_record(folder: Path) -> Owner | None:
    try:
        data = json.loads(record_path(folder).read_text())
        return Owner(data["lab"], data["instance"], data["topology_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(folder: Path, owner: Owner, topology: str) -> None:
    """Atomic: a reader sees the old record or the new one, never half of one."""
    data = {"lab": owner.lab, "instance": owner.instance, "topology": topology, "topology_hash": owner.topology_hash}
    write_atomic(record_path(folder), json.dumps(data, indent=2) + "\n")


def write_plan_record(plan: Plan) -> None:
    write_record(plan.pool_path, Owner(plan.lab, plan.instance, plan.topology_hash), plan.topology)


# ----------------------------------------------------------------- secrets, key


def read_secrets(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / SECRETS).read_text())
    except FileNotFoundError:
        raise MissingSecrets(f"no secrets in {folder}: the instance was not brought up on this host") from None
    return {str(k): str(v) for k, v in dict(data).items()}


def write_secrets(folder: Path, values: dict[str, str]) -> None:
    write_atomic(folder / SECRETS, json.dumps(values), mode=0o600)


def key_path(folder: Path) -> Path:
    return folder / KEY


def public_key(folder: Path) -> str | None:
    """The instance's public SSH key, or None before `lab up` made it."""
    try:
        return key_path(folder).with_suffix(".pub").read_text().strip()
    except FileNotFoundError:
        return None


def known_hosts_path(folder: Path) -> Path:
    return folder / KNOWN_HOSTS


# --------------------------------------------------------------------- variables


def save_overrides(folder: Path, overrides: dict[str, Value]) -> None:
    """Keep an instance's overrides; `lab up` without --var keeps the ones of an earlier `lab up`."""
    if overrides:
        write_atomic(folder / OVERRIDES, json.dumps(overrides, sort_keys=True))


def instance_variables(folder: Path, declared: dict[str, Value]) -> dict[str, Value]:
    """The lab's variables as this instance has them."""
    try:
        saved = json.loads((folder / OVERRIDES).read_text())
    except FileNotFoundError:
        saved = {}
    return with_overrides(declared, saved if isinstance(saved, dict) else {})


# ------------------------------------------------------------------------ prepared layers


def write_prepared(folder: Path, inputs_hash: str) -> None:
    write_atomic(folder / PREPARED, json.dumps({"inputs_hash": inputs_hash}))


def read_prepared(folder: Path) -> str | None:
    """The inputs hash of the layers the instance started from; None for a cold instance."""
    try:
        value = json.loads((folder / PREPARED).read_text()).get("inputs_hash")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
