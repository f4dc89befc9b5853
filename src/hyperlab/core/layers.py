"""Prepared labs, the pure half: what a layer set is built from, when it is stale, and what keeps
a lab from being prepared (docs/design/prepared.md).

A layer set is every volume of a lab's template instance after its start state, sealed and shut
down, kept read-only in the image store. It is valid for an instance exactly when the instance's
inputs hash to the same value: the same hyperlab, topology, golden and guest images, first-boot
and start scripts, and the same values of the lab's variables (hyperlab cannot tell which
variables a start script reads, so all of them count).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperlab.core.catalog import SHA256

TEMPLATE_INSTANCE = "template"  # the instance `lab prepare` builds; users cannot pick this name
HASH_LENGTH = 16
HASH_PATTERN = re.compile(r"[0-9a-f]{16}")
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}\.qcow2")
SECRET_NAMES = ("domain-admin", "dsrm")  # the instance's passwords (ops.secrets makes them)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerInputs(_Strict):
    """What the layers were built from; any difference makes them stale."""

    hyperlab: str
    topology: str  # core.plan.topology_hash
    images: dict[str, str]  # golden and guest image name -> sha256
    scripts: dict[str, str]  # script path in the lab folder -> sha256 of its content
    variables: dict[str, str]  # the lab's variables as the template had them, as text

    @field_validator("images", "scripts")
    @classmethod
    def _sha256(cls, v: dict[str, str]) -> dict[str, str]:
        for name, digest in v.items():
            if not SHA256.fullmatch(digest):
                raise ValueError(f"{name}: sha256 must be 64 lower-case hex digits")
        return v

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:HASH_LENGTH]


class LayerVolume(_Strict):
    node: str
    name: str  # the volume's file name, as in the instance (DC1.qcow2, SVR1.disk1.qcow2)
    bytes: int = Field(ge=0)  # allocated on disk
    backing: str | None  # the golden image file under it, None for a data disk made empty

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not VOLUME_NAME.fullmatch(v):
            raise ValueError(f"volume name {v!r} is not a plain .qcow2 file name")
        return v


class LayerRecord(_Strict):
    """`layer.json` of one layer set; written last, so a set without it is unfinished."""

    lab: str
    inputs: LayerInputs
    inputs_hash: str
    created: datetime
    volumes: list[LayerVolume] = Field(min_length=1)

    @field_validator("inputs_hash")
    @classmethod
    def _hash(cls, v: str) -> str:
        if not HASH_PATTERN.fullmatch(v):
            raise ValueError("inputs_hash must be 16 lower-case hex digits")
        return v

    def volume(self, name: str) -> LayerVolume | None:
        return next((v for v in self.volumes if v.name == name), None)


def variable_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def make_inputs(version: str, topology_hash: str, images: dict[str, str], scripts: dict[str, bytes],
                variables: dict[str, object]) -> LayerInputs:
    return LayerInputs(hyperlab=version, topology=topology_hash, images=dict(sorted(images.items())),
                       scripts={path: hashlib.sha256(data).hexdigest() for path, data in sorted(scripts.items())},
                       variables={name: variable_text(value) for name, value in sorted(variables.items())})


def differences(built: LayerInputs, wanted: LayerInputs) -> list[str]:
    """Why layers built from `built` do not fit `wanted`, one short phrase per difference."""
    found = []
    if built.hyperlab != wanted.hyperlab:
        found.append(f"hyperlab {built.hyperlab} -> {wanted.hyperlab}")
    if built.topology != wanted.topology:
        found.append("the topology changed")
    for kind, old, new in (("image", built.images, wanted.images), ("script", built.scripts, wanted.scripts)):
        for name in sorted(old.keys() | new.keys()):
            if name not in new:
                found.append(f"{kind} {name} is no longer used")
            elif name not in old:
                found.append(f"{kind} {name} is new")
            elif old[name] != new[name]:
                found.append(f"{kind} {name} changed")
    for name in sorted(built.variables.keys() | wanted.variables.keys()):
        old_value, new_value = built.variables.get(name), wanted.variables.get(name)
        if old_value != new_value:
            found.append(f"variable {name}: {old_value} -> {new_value}")
    return found


def secrets_used(scripts: dict[str, bytes]) -> dict[str, list[str]]:
    """Script path -> the instance secrets it names. A start state that uses one leaves it (or what
    was made from it) in the disks, so such a lab needs `personalize:` before it can be prepared."""
    used = {}
    for path, data in sorted(scripts.items()):
        text = data.decode("utf-8", "replace")
        names = [name for name in SECRET_NAMES if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)]
        if names:
            used[path] = names
    return used


def layer_relpath(lab: str, inputs_hash: str) -> PurePosixPath:
    """The layer set's folder under the image store."""
    return PurePosixPath("layers") / lab / inputs_hash
