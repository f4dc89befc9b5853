"""YAML files -> validated models. A pipeline of phases with a gate after each:

    read YAML -> schema (pydantic) -> topology rules -> lab rules

Every phase collects all its problems, then stops once; every problem carries file:line:column.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hyperlab import validate
from hyperlab.errors import LabError, Problem, UsageError
from hyperlab.model import Lab, Topology
from hyperlab.yamlsrc import MarkedDict, Source, read_yaml

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedTopology:
    topology: Topology
    source: Source


@dataclass(frozen=True)
class LoadedLab:
    lab: Lab
    source: Source
    topology: LoadedTopology

    @property
    def folder(self) -> Path:
        return self.source.path.parent


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder above `start` holding labs/ and topologies/."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "labs").is_dir() and (folder / "topologies").is_dir():
            return folder
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "labs").is_dir():
        return checkout
    raise UsageError("no labs/ and topologies/ folders found here or above; run lab from a hyperlab checkout")


def lab_ids(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (root / "labs").glob("*/lab.yaml"))


def lab_path(ref: str, root: Path) -> Path:
    """A lab id (`chapter-2`), a lab folder, or a lab.yaml path -> the lab.yaml path."""
    candidate = Path(ref)
    if candidate.is_dir():
        candidate = candidate / "lab.yaml"
    if candidate.is_file():
        return candidate
    by_id = root / "labs" / ref / "lab.yaml"
    if by_id.is_file():
        return by_id
    known = ", ".join(lab_ids(root)) or "none"
    raise UsageError(f"no lab {ref!r}: not a file and not in {root / 'labs'} (labs: {known})")


def load_topology_file(path: Path) -> LoadedTopology:
    source = read_yaml(path)
    _merge_defaults(source.data)
    topology = _schema(Topology, source)
    _gate(validate.topology_problems(topology, source))
    return LoadedTopology(topology, source)


def load_lab(ref: str | Path, root: Path | None = None) -> LoadedLab:
    root = root or find_root()
    path = lab_path(str(ref), root)
    source = read_yaml(path)
    lab = _schema(Lab, source)
    topo_path = _topology_path(lab.topology, path, root)
    if topo_path is None:
        raise LabError([source.problem(("topology",), f"topology {lab.topology!r} not found: no {lab.topology}.yaml in topologies/")])
    topology = load_topology_file(topo_path)
    _gate(validate.lab_problems(lab, source, topology.topology))
    return LoadedLab(lab, source, topology)


def load_any(ref: str | Path, root: Path | None = None) -> LoadedLab | LoadedTopology:
    """`lab validate` accepts a lab id, a lab file or a topology file."""
    path = Path(ref)
    if path.is_file() and "steps" not in read_yaml(path).data:
        return load_topology_file(path)
    return load_lab(ref, root)


def _topology_path(name: str, lab_file: Path, root: Path) -> Path | None:
    """Search topologies/ beside the lab file and upwards, then in the project root."""
    for folder in (*lab_file.resolve().parents, root):
        candidate = folder / "topologies" / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def _gate(problems: list[Problem]) -> None:
    if problems:
        raise LabError(problems)


def _merge_defaults(data: MarkedDict) -> None:
    """Copy `defaults:` into each node that lacks the key, keeping the defaults' positions."""
    defaults, nodes = data.get("defaults"), data.get("nodes")
    if not isinstance(defaults, MarkedDict) or not isinstance(nodes, MarkedDict):
        return
    for node in nodes.values():
        if isinstance(node, MarkedDict):
            for key, value in defaults.items():
                if key not in node:
                    node[key] = value
                    node.key_pos[key] = defaults.key_pos[key]
                    node.value_pos[key] = defaults.value_pos[key]


# ------------------------------------------------------------ pydantic errors -> problems


def _schema(model: type[M], source: Source) -> M:
    try:
        return model.model_validate(dict(source.data))
    except ValidationError as exc:
        raise LabError([_problem(model, source, error) for error in exc.errors()]) from None


def _problem(model: type[BaseModel], source: Source, error: Any) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc = loc[:-1]
    where = ".".join(str(part) for part in loc) or "top level"
    if kind == "missing":
        return source.problem(loc, f"{where}: required field missing; add `{loc[-1]}:`")
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known fields: {', '.join(known)}"
        return source.problem(loc, f"{where}: unknown field; {hint}", key=True)
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("literal_error", "int_parsing", "int_type", "bool_parsing", "bool_type", "string_type",
                "ip_v4_address", "ip_v4_network", "ip_v4_interface", "dict_type", "list_type", "model_type",
                "int_from_float", "too_short", "greater_than_equal", "less_than_equal", "model_attributes_type"):
        message = f"{message}, got {_show(error.get('input'))}"
    if is_key:
        return source.problem(loc, f"{where}: {message}", key=True)
    return source.problem(loc, f"{where}: {message}")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at `loc`, for did-you-mean hints."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation
