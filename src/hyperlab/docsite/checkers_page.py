"""The checker API reference (`docs/reference/checkers.LANG.md`).

Read from the objects checkers use: the pytest plugin's options and fixtures, the classes behind
them (Instance, Node, Probe, their results), `eventually`, the outcome states and the exceptions
that mean "could not check". Docstrings stay in English on both pages; headings and the
connecting text follow the page's language (`words/checkers.yaml`).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import warnings
from types import SimpleNamespace
from typing import Any

from hyperlab.docsite.markdown import doc_text, md
from hyperlab.docsite.words import words
from hyperlab.grading import outcome, plugin
from hyperlab.grading.eventually import eventually
from hyperlab.grading.outcome import Status
from hyperlab.grading.target import Instance, Node, Probe, Recorder
from hyperlab.grading.unreachable import COULD_NOT_CHECK, CheckError
from hyperlab.guest.base import RunResult
from hyperlab.probes import DEFAULT_TIMEOUT, ProbeResult
from hyperlab.probes.base import MEANING, Outcome

# Members of Instance that checkers use (the rest serve the plugin: conn, missing, domain_uuids, close).
INSTANCE_MEMBERS = ("lab", "instance", "ip", "variables", "netns", "node")
# Public members of Node and Probe that are the plugin's business, not a checker's.
NOT_FOR_CHECKERS = frozenset({"close"})


class _Ann(str):
    """An annotation or default shown as written (`str | None`, `bool`), not quoted or as `<class 'bool'>`."""

    def __repr__(self) -> str:
        return str(self)


def _shown(annotation: Any) -> Any:
    if isinstance(annotation, str):
        return _Ann(re.sub(r"\bprobes\.", "", annotation))
    return annotation


def _signature(name: str, fn: Any, *, drop_first: bool = True, drop: tuple[str, ...] = ()) -> str:

    sig = inspect.signature(fn)
    params = []
    for p in list(sig.parameters.values())[1 if drop_first else 0:]:
        if p.name in drop:
            continue
        default = p.default
        if default is not p.empty and (isinstance(default, type) or inspect.isfunction(default)):
            default = _Ann(default.__name__)
        params.append(p.replace(annotation=_shown(p.annotation), default=default))
    sig = sig.replace(parameters=params, return_annotation=_shown(sig.return_annotation))
    return f"{name}{sig}"


def _public(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties of a class, in source order."""
    return [(name, member) for name, member in vars(cls).items()
            if not name.startswith("_") and (callable(member) or isinstance(member, property))
            and name not in NOT_FOR_CHECKERS]


def _member(title: str, anchor: str, member: Any) -> list[str]:
    """One method or property: its signature (or type), then its docstring, else FALLBACK_DOCS."""
    if isinstance(member, property):
        returns = member.fget.__annotations__.get("return")
        signature = f"{title}: {_shown(returns)}" if returns else title
        doc = member.fget.__doc__
    else:
        signature, doc = _signature(title, member), member.__doc__
    out = [f"### `{title}` {{#{anchor}}}", "", "```python", signature, "```", ""]
    text = doc_text(doc or words("checkers")["fallback_docs"].get(anchor))
    return out + ([text, ""] if text else [])


def plugin_options() -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The plugin's command-line options, read by calling its pytest_addoption with a recording parser."""

    class Recording:
        def __init__(self) -> None:
            self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []

        def getgroup(self, name: str, description: str = "") -> Recording:
            return self

        def addoption(self, *opts: str, **attrs: Any) -> None:
            self.options.append((opts, attrs))

    class Plugins:  # "testinfra is loaded": nothing gets blocked
        def get_plugin(self, name: str) -> object:
            return object()

        def set_blocked(self, name: str) -> None:
            pass

    parser = Recording()
    plugin.pytest_addoption(parser, Plugins())  # type: ignore[arg-type]
    return parser.options


def plugin_markers() -> list[str]:
    """The marker lines the plugin registers (pytest_configure with a recording config)."""

    class Config:
        def __init__(self) -> None:
            self.lines: list[str] = []
            self.stash: dict[Any, Any] = {}

        def addinivalue_line(self, name: str, line: str) -> None:
            if name == "markers":
                self.lines.append(line)

        def getoption(self, name: str) -> Any:
            return None

    config = Config()
    plugin.pytest_configure(config)  # type: ignore[arg-type]
    return config.lines


def plugin_fixtures() -> dict[str, Any]:
    """Name -> fixture definition, for every fixture the plugin module defines."""

    found = {}
    for attr, obj in vars(plugin).items():
        if type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(obj, "_pytestfixturefunction"):
            found[getattr(obj, "name", None) or attr] = obj
    return found


def probe_functions() -> dict[str, Any]:
    """Probe method name -> the hyperlab.probes function it runs (found by calling it with a recording `_run`)."""


    found = {}
    for name, method in _public(Probe):
        seen: list[Any] = []
        probe = Probe("netns", Recorder())
        probe._run = lambda fn, *args, **kwargs: seen.append(fn)  # type: ignore[method-assign,assignment]
        required = [p for p in list(inspect.signature(method).parameters.values())[1:]
                    if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        try:
            getattr(probe, name)(*[None] * len(required))
        except Exception:  # noqa: BLE001 - a method that does more than call a probe: shown without it
            continue
        if seen:
            found[name] = seen[0]
    return found


def _status_meanings() -> dict[str, str]:
    """PASS/FAIL/BLOCKED/ERROR -> meaning, from the list in hyperlab.grading.outcome's docstring."""

    meanings = {}
    for match in re.finditer(r"^- ([A-Z]+)\s+(.+?)(?=^- |\n\n|\Z)", outcome.__doc__ or "", re.M | re.S):
        meanings[match.group(1)] = " ".join(match.group(2).split()).rstrip(";.") + "."
    return meanings


def checkers_reference(lang: str) -> str:
    """The checker API page: options, marker, fixtures, Instance, Node, RunResult, Probe, eventually, states."""

    with warnings.catch_warnings():
        # ldap3, imported with the probes, still uses pyasn1's deprecated names: not this page's news
        warnings.simplefilter("ignore", DeprecationWarning)
        return _checkers_page(lang)


def _checkers_page(lang: str) -> str:


    page = words("checkers")
    w = page["words"][lang]
    ko = lang == "ko"
    out = [f"# {w['title']}", "", w["intro"], "",
           "```python", "import pytest", "", "from hyperlab.grading import CheckError, eventually", "```", ""]

    out += [f"## {w['marker']} {{#marker}}", "", "```python", '@pytest.mark.step("STEP-ID", weight=1)', "```", "",
            w["marker_body"], ""]
    for line in plugin_markers():
        out += [f"{w['registered']}: `{line}`", ""]

    out += [f"## {w['fixtures']} {{#fixtures}}", "", w["fixtures_body"], ""]
    see = {"lab": "#instance", "node": "#node", "probe": "#probe", "host": None}
    for name, fixture in plugin_fixtures().items():
        out += [f"### `{name}` {{#fixture-{name}}}", "", doc_text(fixture.__doc__), ""]
        anchor = see.get(name)
        if anchor:
            out += [f"{w['returns']}: [{w[anchor[1:]]}]({anchor})", ""]

    out += [f"## {w['instance']} {{#instance}}", "", doc_text(Instance.__doc__), ""]
    for name in INSTANCE_MEMBERS:
        out += _member(f"lab.{name}", f"instance-{name}", vars(Instance)[name])

    out += [f"## {w['node']} {{#node}}", "", doc_text(Node.__doc__), ""]

    sample = Node(SimpleNamespace(name="N", os="linux"), lambda: None, Recorder())  # type: ignore[arg-type,return-value]
    attributes = [a for a in vars(sample) if not a.startswith("_")]
    out += [f"**{w['attributes']}**", "", f"| {w['field']} | {w['description']} |", "| --- | --- |"]
    described = page["node_attributes"]
    out += [f"| `{a}` | {doc_text(described.get(a, ''))} |" for a in attributes] + [""]
    for name, member in _public(Node):
        out += _member(f"node.{name}", f"node-{name}", member)

    out += [f"## {w['runresult']} {{#runresult}}", "", f"| {w['field']} | {w['value']} |", "| --- | --- |"]
    out += [f"| `{f.name}` | `{f.type}` |" for f in dataclasses.fields(RunResult)] + [""]
    for name, member in _public(RunResult):
        out += _member(f"result.{name}", f"runresult-{name}", member)

    out += [f"## {w['probe']} {{#probe}}", "", doc_text(Probe.__doc__), "", w["probe_body"].format(timeout=DEFAULT_TIMEOUT), ""]
    targets = probe_functions()
    for name, member in _public(Probe):
        out += _member(f"probe.{name}", f"probe-{name}", member)
        target = targets.get(name)
        if target is not None:
            out += [f"{w['calls']}:", "", "```python",
                    _signature(f"hyperlab.probes.{target.__name__}", target, drop_first=False, drop=("netns",)),
                    "```", "", doc_text(target.__doc__), ""]

    out += [f"## {w['proberesult']} {{#proberesult}}", "", doc_text(ProbeResult.__doc__), ""]
    out += [f"| {w['field']} | {w['value']} |", "| --- | --- |"]
    out += [f"| `{f.name}` | `{f.type}` |" for f in dataclasses.fields(ProbeResult)] + [""]
    for name, member in _public(ProbeResult):
        out += _member(f"result.{name}", f"proberesult-{name}", member)
    out += [f"**{w['outcomes']}**", "", f"| Outcome | {w['meaning']} |", "| --- | --- |"]
    out += [f"| `{o.value}` | {md(MEANING.get(o, ''))} |" for o in Outcome] + [""]

    fn = eventually
    out += [f"## {w['eventually']} {{#eventually}}", "", "```python",
            _signature("eventually", fn, drop_first=False), "```", "", doc_text(fn.__doc__), ""]

    meanings = _status_meanings()
    out += [f"## {w['status']} {{#status}}", "", w["status_body"], "",
            f"| {w['state']} | {w['meaning']} |", "| --- | --- |"]
    for status in Status:
        meaning = page["status_ko"].get(status.value) if ko else None
        out.append(f"| `{status.value}` | {md(meaning or meanings.get(status.value, ''))} |")
    out += ["", f"**{w['raised']}**", "", f"| {w['exceptions']} | {w['state']} |", "| --- | --- |",
            f"| {w['returns_normally']} | `PASS` |",
            f"| `AssertionError` ({w['assertion']}) | `FAIL` |",
            "| " + ", ".join(f"`{e.__name__}`" for e in COULD_NOT_CHECK) + " | `ERROR` (could not check) |",
            f"| {w['other_exception']} | `ERROR` (checker error) |",
            f"| {w['required_failed']} | `BLOCKED` |", ""]
    out += ["### `CheckError` {#checkerror}", "", doc_text(CheckError.__doc__), ""]

    out += [f"## {w['options']} {{#options}}", "", w["options_body"], "",
            f"| {w['option']} | {w['value']} | {w['default']} | {w['description']} |", "| --- | --- | --- | --- |"]
    for opts, attrs in plugin_options():
        if attrs.get("choices"):
            kind = w["one_of"] + ", ".join(f"`{c}`" for c in attrs["choices"])
        elif attrs.get("type") is int:
            kind = w["integer"]
        else:
            kind = w["text"]
        if attrs.get("action") == "append":
            kind += f" ({w['repeatable']})"
        default = f"`{attrs['default']}`" if attrs.get("default") not in (None, "") else ""
        out.append(f"| {', '.join(f'`{o}`' for o in opts)} | {kind} | {default} | {md(attrs.get('help', ''), code=True)} |")
    out.append("")
    return "\n".join(out)
