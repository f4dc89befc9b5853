"""YAML files -> validated models. A pipeline of phases with a gate after each:

    read YAML -> schema (pydantic) -> topology rules -> lab rules

Every phase collects all its problems, then stops once; every problem carries file:line:column.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hyperlab.core import validate
from hyperlab.core.errors import LabError, Problem, UsageError, display_path
from hyperlab.core.model import Lab, Topology
from hyperlab.core.paths import inside
from hyperlab.core.yamlsrc import MarkedDict, Source, read_yaml

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
    checkout = Path(__file__).resolve().parents[3]
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


def load_topology_file(path: Path, source: Source | None = None) -> LoadedTopology:
    source = source or read_yaml(path)
    _merge_defaults(source.data)
    topology = parse_model(Topology, source)
    _gate(validate.topology_problems(topology, source))
    return LoadedTopology(topology, source)


def load_lab(ref: str | Path, root: Path | None = None, source: Source | None = None) -> LoadedLab:
    """`source`: the lab file already read (by `load_any`), so that it is parsed once."""
    root = root or find_root()
    path = source.path if source is not None else lab_path(str(ref), root)
    source = source or read_yaml(path)
    lab = parse_model(Lab, source)
    topo_path = _topology_path(lab.topology, path, root)
    if topo_path is None:
        known = _topology_names(path, root)
        close = difflib.get_close_matches(lab.topology, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"topologies: {', '.join(known) or 'none'}"
        raise LabError([source.problem(("topology",), f"topology {lab.topology!r} not found: no {lab.topology}.yaml in topologies/; {hint}")])
    if inside(topo_path.parent, topo_path.name) is None:
        raise LabError([source.problem(("topology",), f"topologies/{topo_path.name} is a link that leaves "
                                                      f"{display_path(topo_path.parent)}; copy the topology there")])
    topology = load_topology_file(topo_path)
    _gate(validate.lab_problems(lab, source, topology.topology))
    return LoadedLab(lab, source, topology)


def load_any(ref: str | Path, root: Path | None = None) -> LoadedLab | LoadedTopology:
    """`lab validate` accepts a lab id, a lab file or a topology file."""
    path = Path(ref)
    if not path.is_file():
        return load_lab(ref, root)
    source = read_yaml(path)
    # `topology:` is as much a lab's mark as `steps:`: a lab that forgot its steps must be told
    # so, not be checked as a topology (which would report every lab field as unknown).
    if not {"steps", "topology"} & source.data.keys():
        return load_topology_file(path, source)
    return load_lab(ref, root, source)


def _topology_path(name: str, lab_file: Path, root: Path) -> Path | None:
    """Search topologies/ beside the lab file and upwards, then in the project root."""
    for folder in (*lab_file.resolve().parents, root):
        candidate = folder / "topologies" / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def _topology_names(lab_file: Path, root: Path) -> list[str]:
    """Every topology name `_topology_path` could find, for the did-you-mean hint."""
    folders = (*lab_file.resolve().parents, root)
    return sorted({p.stem for folder in folders for p in (folder / "topologies").glob("*.yaml")})


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
            inherited = {key for key in defaults if key not in node}
            for key in inherited:
                node[key] = defaults[key]
                node.key_pos[key] = defaults.key_pos[key]
                node.value_pos[key] = defaults.value_pos[key]
            node.inherited = frozenset(inherited)


# ------------------------------------------------------------ pydantic errors -> problems


def parse_model(model: type[M], source: Source) -> M:
    try:
        return model.model_validate(dict(source.data))
    except ValidationError as exc:
        errors = _merge_union_errors(_drop_misspelt_missing(exc.errors()))
        raise LabError([_problem(model, source, error) for error in errors]) from None


def _drop_misspelt_missing(errors: list[Any]) -> list[Any]:
    """`imgae: x` gives both "image missing" and "imgae unknown"; the fix is one edit, so one line."""
    unknown: dict[tuple[Any, ...], list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            unknown.setdefault(tuple(error["loc"][:-1]), []).append(str(error["loc"][-1]))
    return [
        error for error in errors
        if not (error["type"] == "missing"
                and difflib.get_close_matches(str(error["loc"][-1]), unknown.get(tuple(error["loc"][:-1]), []), n=1))
    ]


_UNION_MEMBERS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true/false"}


def _merge_union_errors(errors: list[Any]) -> list[Any]:
    """`str | int | bool` fails once per member (loc ...x.str, ...x.int, ...); one value, one line."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        if loc and loc[-1] in _UNION_MEMBERS:
            groups.setdefault(loc[:-1], []).append(error)
    merged, done = [], set()
    for error in errors:
        loc = tuple(error["loc"])
        group = groups.get(loc[:-1]) if loc and loc[-1] in _UNION_MEMBERS else None
        if not group or len(group) < 2:
            merged.append(error)
        elif loc[:-1] not in done:
            done.add(loc[:-1])
            names = [_UNION_MEMBERS[e["loc"][-1]] for e in group]
            expected = ", ".join(names[:-1]) + " or " + names[-1]
            merged.append({"type": "union_type", "loc": loc[:-1], "msg": f"Input should be {expected}", "input": error.get("input")})
    return merged


def _where(loc: tuple[Any, ...]) -> str:
    """('nodes', 'A', 'nics', 0, 'ip') -> nodes.A.nics[0].ip, as the semantic rules write it.

    A key that is not a plain word (empty, spaces, dots) is quoted: nodes['WEB 1'].
    """
    text = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" if _PLAIN_KEY.fullmatch(str(part)) else f"[{str(part)!r}]"
        for part in loc
    ).removeprefix(".")
    return text or "top level"


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _problem(model: type[BaseModel], source: Source, error: Any) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc = loc[:-1]
    loc = source.owner(loc)  # a bad `defaults:` value: one problem named defaults.KEY, not one per node
    where = _where(loc)
    if kind == "missing":
        return source.problem(loc, f"{where}: required field missing; add `{loc[-1]}:`")
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known fields: {', '.join(known)}"
        return source.problem(loc, f"{where}: unknown field; {hint}", key=True)
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if kind == "too_short":  # pydantic: "List should have at least 1 item after validation, not 0"
        message = "must not be empty; add at least one entry"
    elif kind == "ip_v4_network" and isinstance(value, str) and (network := _lenient_network(value)):
        message = f"{value} has host bits set; the network is {network}"
    elif kind in ("ip_v4_address", "ip_v4_network", "ip_v4_interface"):
        example = {"ip_v4_address": "192.168.1.10", "ip_v4_network": "192.168.1.0/24", "ip_v4_interface": "192.168.1.10/24"}[kind]
        what = {"ip_v4_address": "an IPv4 address", "ip_v4_network": "an IPv4 network", "ip_v4_interface": "an IPv4 address/prefix length"}[kind]
        message = f"{_show(value)} is not {what} such as {example}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        # pydantic says "dictionary" or "instance of Node"; in YAML this is a mapping.
        message = f"should be a mapping (key: value lines), got {_show(value)}"
    elif kind == "int_from_float":  # pydantic: "... got a number with a fractional part"
        message = f"Input should be a whole number, got {_show(value)}"
    elif loc == ("topology",) and isinstance(value, str) and ("/" in value or value.endswith((".yaml", ".yml"))):
        message = f"{value!r} is a path; give the topology's name, such as {Path(value).stem!r}"
    elif kind in ("literal_error", "int_parsing", "int_type", "bool_parsing", "bool_type", "string_type",
                  "list_type", "greater_than_equal", "less_than_equal", "union_type"):
        message = f"{message}, got {_show(value)}"
    if is_key:
        return source.problem(loc, f"{where}: {message}", key=True)
    return source.problem(loc, f"{where}: {message}")


def _lenient_network(text: str) -> IPv4Network | None:
    try:
        return IPv4Network(text, strict=False)
    except ValueError:
        return None


def _show(value: Any) -> str:
    if value is None:
        return "an empty value"
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
