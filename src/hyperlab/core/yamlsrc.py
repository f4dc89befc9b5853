"""YAML -> plain Python data that remembers where every key and value came from.

PyYAML's composer gives nodes with marks; we build dicts and lists from them ourselves so
that a pydantic error location such as ('nodes', 'DC1', 'nics', 0, 'ip') can be turned back
into `file:line:column`. Duplicate keys, merge keys and alias bombs are refused here, because
PyYAML would silently keep the last duplicate and expand aliases without limit.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hyperlab.core.errors import LabError, Problem, display_path, printable
from hyperlab.core.limits import MAX_FILE_BYTES
from hyperlab.core.textfile import Kind, read_utf8

Pos = tuple[int, int]  # 1-based line, column
MAX_VALUES = 100_000  # far beyond any real lab; stops "billion laughs" alias expansion


class MarkedDict(dict[str, Any]):
    pos: Pos
    key_pos: dict[str, Pos]
    value_pos: dict[str, Pos]
    inherited: frozenset[str] = frozenset()  # keys copied in from `defaults:` (see load._merge_defaults)


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

    def owner(self, loc: Iterable[Any]) -> tuple[Any, ...]:
        """`loc` as the user wrote it: a node key inherited from `defaults:` is defaults.KEY.

        So that a mistake in `defaults:` is named (and reported) once, not once per node.
        """
        loc = tuple(loc)
        nodes = self.data.get("nodes")
        if len(loc) >= 3 and loc[0] == "nodes" and isinstance(nodes, MarkedDict):
            node = nodes.get(loc[1])
            if isinstance(node, MarkedDict) and loc[2] in node.inherited:
                return ("defaults", *loc[2:])
        return loc

    def problem(self, loc: Iterable[Any], message: str, *, key: bool = False) -> Problem:
        line, column = self.pos(loc, key=key)
        return Problem(self.name, line, column, one_line(message))


def one_line(message: str) -> str:
    """Escape control characters: messages quote user keys, and a key may hold a line break."""
    return printable(message)


# PyYAML also breaks lines at NEL and the Unicode line and paragraph separators; editors do not,
# so its line numbers would point elsewhere. Only "\n" ends a line the user sees.
_ODD_BREAKS = ("\x85", "\u2028", "\u2029")
_starts: list[Any] = [None, None]  # [buffer, its line starts]: one file is read at a time


def _pos(mark: yaml.Mark) -> Pos:
    buffer = getattr(mark, "buffer", None)
    if not isinstance(buffer, str):
        return mark.line + 1, mark.column + 1
    if _starts[0] is not buffer:
        odd = any(c in buffer for c in _ODD_BREAKS)
        _starts[:] = [buffer, [0, *(i + 1 for i, c in enumerate(buffer) if c == "\n")] if odd else None]
    starts = _starts[1]
    if starts is None:
        return mark.line + 1, mark.column + 1
    line = bisect.bisect_right(starts, mark.index)
    return line, mark.index - starts[line - 1] + 1


def kind(value: Any) -> str:
    """A value's kind in YAML words, for messages (never a Python class name)."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):  # a message quotes a value, never a whole file
        return f"the text {value!r}" if len(value) <= 60 else f"the text {value[:57]!r}..."
    return f"a {type(value).__name__} ({value})"  # dates and the like


# YAML 1.1 reads these plain words as booleans, and 12:30 as the sexagesimal number 750.
# Labs are full of names (a node NO, a step `on`) and MAC addresses (52:54:00:12:34:56),
# so, as in YAML 1.2, only true/false are booleans and colon-separated digits stay text;
# boolean fields still accept yes/no/on/off because pydantic parses those words. No field
# is a date, so 2024-06-01 stays text too (a date object fails every field, even variables).
_YAML11_ONLY_BOOLS = {"yes", "no", "on", "off", "y", "n"}
_BOOL_TAG, _INT_TAG, _FLOAT_TAG, _DATE_TAG = (f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp"))


def _keep_as_text(node: yaml.Node) -> bool:
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return False  # quoted scalars are text already
    if node.tag == _BOOL_TAG:
        return node.value.lower() in _YAML11_ONLY_BOOLS
    if node.tag == _DATE_TAG:
        return True
    return node.tag in (_INT_TAG, _FLOAT_TAG) and ":" in node.value


def _syntax_message(exc: yaml.MarkedYAMLError, text: str) -> tuple[yaml.Mark | None, str]:
    """PyYAML's parser wording -> where the user has to look and what to do about it."""
    problem, context = exc.problem or "", exc.context or ""
    mark, ctx = exc.problem_mark, exc.context_mark
    if ctx is not None and mark is not None and context.startswith(("while parsing a flow", "while scanning a quoted")) \
            and (mark.line > ctx.line or "end of stream" in problem or "<stream end>" in problem):
        # The opener was never closed; the parser only notices at a later line or at the end.
        opener = text[ctx.index] if ctx.index < len(text) else "?"
        closer = {"[": "]", "{": "}"}.get(opener, opener)
        where = "never closed" if "end of stream" in problem or "<stream end>" in problem else f"not closed before line {_pos(mark)[0]}"
        return ctx, f"YAML syntax error: this {opener} is {where}; add the matching {closer}"
    if "'\\t'" in problem:  # PyYAML shows the character as repr: '\t'
        return mark, "YAML syntax error: a tab character; YAML indents with spaces only"
    if problem.startswith("expected <block end>") and "block mapping start" in problem:
        return mark, "YAML syntax error: bad indentation; indent this line exactly like the other keys of its mapping"
    if problem == "mapping values are not allowed here":
        return mark, "YAML syntax error: unexpected ':' here; quote a value that contains ': ', or fix the indentation"
    if problem == "but found another document":
        return mark, "YAML syntax error: a second YAML document (---) starts here; keep one document per file"
    if problem.startswith("found undefined alias"):
        return mark, f"YAML syntax error: {problem}; define the anchor (&name) before using *name"
    return mark or ctx, f"YAML syntax error: {problem or context or 'invalid YAML'}"


class _Builder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.active: set[int] = set()
        self.built: set[int] = set()  # a node built twice is an alias use
        self.expanding: list[yaml.Node] = []  # aliased nodes being built, outermost first
        self.scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def fail(self, mark: yaml.Mark, message: str) -> LabError:
        line, column = _pos(mark)
        return LabError([Problem(self.name, line, column, one_line(message))])

    def build(self, node: yaml.Node) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            # Point at the outermost anchor being repeated, not at some value deep inside it.
            where = self.expanding[0] if self.expanding else node
            raise self.fail(where.start_mark, f"aliases of this anchor expand the file to more than {MAX_VALUES} values; use fewer aliases")
        if id(node) in self.active:
            raise self.fail(node.start_mark, "a YAML alias refers to itself; remove the recursive alias")
        reused = id(node) in self.built
        self.built.add(id(node))
        self.active.add(id(node))
        if reused:
            self.expanding.append(node)
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
            if reused:
                self.expanding.pop()

    def _mapping(self, node: yaml.MappingNode) -> MarkedDict:
        result = MarkedDict()
        result.pos = _pos(node.start_mark)
        result.key_pos, result.value_pos = {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node.start_mark, "YAML merge keys (<<) are not supported; use `defaults:` or write the keys out")
            key = self.build(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node.start_mark, f"a key must be text, not {kind(key)}; quote it")
            if key in result:
                first = result.key_pos[key][0]
                raise self.fail(key_node.start_mark, f"duplicate key {key!r} (first defined on line {first}); keep one")
            if id(value_node) in self.active:
                # The composer forgets where the alias (*name) was written; its key is the best mark.
                raise self.fail(key_node.start_mark, f"the value of {key!r} is an alias of a mapping or list that contains it; remove the recursive alias")
            result[key] = self.build(value_node)
            result.key_pos[key] = _pos(key_node.start_mark)
            result.value_pos[key] = _pos(value_node.start_mark)
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        if _keep_as_text(node):
            return node.value
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            if "constructor for the tag" not in str(exc.problem):
                raise self.fail(node.start_mark, f"cannot read this value: {exc.problem}") from None
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")  # as the user wrote it
            raise self.fail(node.start_mark, f"the YAML tag {tag} is not supported; remove it") from None
        except yaml.YAMLError as exc:
            raise self.fail(node.start_mark, f"cannot read this value: {getattr(exc, 'problem', exc)}") from None
        except ValueError as exc:
            # An explicit tag on a value it does not fit (`!!float abc`): the constructor
            # raises a plain ValueError.
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise self.fail(node.start_mark, f"cannot read {node.value!r} as {tag} ({exc}); remove the tag") from None


YAML_FILE = Kind(too_big="the file is {size_mib:.1f} MiB; a lab or topology file is at most {limit_mib} MiB (is it the "
                      "right file?)", not_found="file not found", folder="is a directory, not a YAML file",
                 unreadable="cannot read: ", save_as="save the file as UTF-8")


def read_yaml(path: Path) -> Source:
    """Read a YAML file whose top level is a mapping; every failure is a `LabError`."""
    name = display_path(path)
    text = read_utf8(path, name, MAX_FILE_BYTES, YAML_FILE)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark, message = _syntax_message(exc, text)
        line, column = _pos(mark) if mark else (1, 1)
        raise LabError([Problem(name, line, column, message)]) from None
    except yaml.reader.ReaderError as exc:
        # A control character; PyYAML's own message spans two lines and has no line number.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise LabError([Problem(name, line, column, f"the character U+{exc.character:04X} is not allowed in YAML; remove it")]) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise LabError([Problem(name, 1, 1, f"YAML syntax error: {first}")]) from None
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
        raise LabError([Problem(name, line, column, f"the top level must be a mapping of keys (name: ..., nodes: ...), not {kind(data)}")])
    return Source(path, data)
