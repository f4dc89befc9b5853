"""YAML -> plain Python data that remembers where every key and value came from.

PyYAML's composer gives nodes with marks; we build dicts and lists from them ourselves so
that a pydantic error location such as ('nodes', 'DC1', 'nics', 0, 'ip') can be turned back
into `file:line:column`. Duplicate keys, merge keys and alias bombs are refused here, because
PyYAML would silently keep the last duplicate and expand aliases without limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hyperlab.errors import LabError, Problem, display_path

Pos = tuple[int, int]  # 1-based line, column
MAX_VALUES = 100_000  # far beyond any real lab; stops "billion laughs" alias expansion


class MarkedDict(dict[str, Any]):
    pos: Pos
    key_pos: dict[str, Pos]
    value_pos: dict[str, Pos]


class MarkedList(list[Any]):
    pos: Pos
    item_pos: list[Pos]


class Source:
    """A parsed YAML file: its data and the positions of everything in it."""

    def __init__(self, path: Path, data: MarkedDict) -> None:
        self.path = path
        self.name = display_path(path)
        self.data = data

    def pos(self, loc: Iterable[Any], *, key: bool = False) -> Pos:
        """Position of the deepest part of `loc` that exists in the file.

        `key=True` points at the last key itself rather than its value (for unknown fields).
        """
        current: Any = self.data
        pos = self.data.pos
        for part in loc:
            if isinstance(current, MarkedDict) and isinstance(part, str) and part in current:
                pos = current.key_pos[part] if key else current.value_pos[part]
                current = current[part]
            elif isinstance(current, MarkedList) and isinstance(part, int) and 0 <= part < len(current):
                pos = current.item_pos[part]
                current = current[part]
            else:
                break
        return pos

    def problem(self, loc: Iterable[Any], message: str, *, key: bool = False) -> Problem:
        line, column = self.pos(loc, key=key)
        return Problem(self.name, line, column, message)


def _pos(mark: yaml.Mark) -> Pos:
    return mark.line + 1, mark.column + 1


class _Builder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.active: set[int] = set()
        self.scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def fail(self, mark: yaml.Mark, message: str) -> LabError:
        line, column = _pos(mark)
        return LabError([Problem(self.name, line, column, message)])

    def build(self, node: yaml.Node) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node.start_mark, f"the file expands to more than {MAX_VALUES} values (aliases?); simplify it")
        if id(node) in self.active:
            raise self.fail(node.start_mark, "a YAML alias refers to itself; remove the recursive alias")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node)
            if isinstance(node, yaml.SequenceNode):
                items = MarkedList(self.build(item) for item in node.value)
                items.pos = _pos(node.start_mark)
                items.item_pos = [_pos(item.start_mark) for item in node.value]
                return items
            return self._scalar(node)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode) -> MarkedDict:
        result = MarkedDict()
        result.pos = _pos(node.start_mark)
        result.key_pos, result.value_pos = {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node.start_mark, "YAML merge keys (<<) are not supported; use `defaults:` or write the keys out")
            key = self.build(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node.start_mark, f"a key must be text, not {type(key).__name__} {key!r}; quote it")
            if key in result:
                first = result.key_pos[key][0]
                raise self.fail(key_node.start_mark, f"duplicate key {key!r} (first defined on line {first}); keep one")
            result[key] = self.build(value_node)
            result.key_pos[key] = _pos(key_node.start_mark)
            result.value_pos[key] = _pos(value_node.start_mark)
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.fail(node.start_mark, f"cannot read this value: {getattr(exc, 'problem', exc)}") from None


def read_yaml(path: Path) -> Source:
    """Read a YAML file whose top level is a mapping; every failure is a `LabError`."""
    name = display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabError([Problem(name, 1, 1, "file not found")]) from None
    except IsADirectoryError:
        raise LabError([Problem(name, 1, 1, "is a directory, not a YAML file")]) from None
    except OSError as exc:
        raise LabError([Problem(name, 1, 1, f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LabError([Problem(name, line, 1, "not UTF-8 text; save the file as UTF-8")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = _pos(mark) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        raise LabError([Problem(name, line, column, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise LabError([Problem(name, 1, 1, f"YAML syntax error: {exc}")]) from None
    except RecursionError:
        raise LabError([Problem(name, 1, 1, "the YAML is nested too deeply")]) from None
    if root is None:
        raise LabError([Problem(name, 1, 1, "the file is empty")])
    try:
        data = _Builder(name).build(root)
    except RecursionError:
        raise LabError([Problem(name, 1, 1, "the YAML is nested too deeply")]) from None
    if not isinstance(data, MarkedDict):
        line, column = _pos(root.start_mark)
        raise LabError([Problem(name, line, column, f"the top level must be a mapping of keys, not a {type(data).__name__}")])
    return Source(path, data)
