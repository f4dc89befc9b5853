"""The house rules of src/hyperlab (docs/design/architecture.md), read from the code's own imports.

Every import counts: at module level, inside functions, and under `if TYPE_CHECKING:`. A circle hidden
by a function-local import is still a circle, and an upward import for a type annotation still ties
the lower floor to the upper one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "hyperlab"
MAX_LINES = 500

# What each folder may import from hyperlab (itself always). The floors, from the ground up:
#   core, probes  <-  render  <-  host  <-  guest  <-  images  <-  ops  <-  cli  <-  docsite
#   grading sits beside ops: it reads deployed instances through host/ and guest/, never through ops/.
#   remote (other hosts, over SSH) stands on core/ and host/; ops/ and grading/ both reach class hosts through it.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "probes": set(),
    "render": {"core"},
    "host": {"core", "render", "probes"},
    "guest": {"core", "render", "host", "probes"},
    "images": {"core", "render", "host", "guest", "probes"},
    "remote": {"core", "host"},
    "ops": {"core", "render", "host", "guest", "images", "probes", "remote"},
    "grading": {"core", "render", "host", "guest", "probes", "remote"},
    "cli": {"core", "render", "host", "guest", "images", "ops", "grading", "probes", "remote"},
    "docsite": {"core", "render", "host", "guest", "images", "ops", "grading", "probes", "cli", "remote"},
    "": {"cli"},  # hyperlab/__init__.py and __main__.py
}
# The pure floors talk to nothing: no libvirt, no processes, no network sessions.
PURE = {"core", "render"}
IMPURE_MODULES = {"libvirt", "libvirt_qemu", "subprocess", "paramiko", "socket", "winrm", "ldap3", "smb"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module `path` imports, absolute, at any depth of its code."""
    this = module_name(path, package)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from hyperlab.host import hostnet` imports the module hyperlab.host.hostnet
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the modules of the package it imports (names that are not modules are dropped)."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    root = package.name  # `from hyperlab import probes` names the root package only to reach probes
    return {name: {m for m in imports_of(path, package) if m in files and m not in (name, root)}
            for name, path in files.items()}


def folder_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circles() -> None:
    found = cycles(graph())
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_circle_finder_finds_a_circle_through_a_hidden_import() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_a_function_local_import_counts(tmp_path: Path) -> None:
    package = tmp_path / "hyperlab"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core" / "__init__.py").write_text("")
    (package / "core" / "a.py").write_text("def f():\n    from hyperlab.core import b\n    return b\n")
    (package / "core" / "b.py").write_text("from . import a\n")
    assert cycles(graph(package)) == [["hyperlab.core.a", "hyperlab.core.b"]]


def test_each_folder_imports_only_the_floors_below_it() -> None:
    wrong = []
    for module, targets in sorted(graph().items()):
        here = folder_of(module)
        assert here in ALLOWED, f"{module}: folder {here!r} has no rule in this test (docs/design/architecture.md)"
        for target in sorted(targets):
            there = folder_of(target)
            if there != here and there not in ALLOWED[here]:
                wrong.append(f"{module} imports {target} ({here or 'hyperlab'}/ may not import {there or 'hyperlab'}/)")
    assert wrong == [], "\n".join(wrong)


def test_grading_never_reaches_ops() -> None:
    edges = graph()
    reached: set[str] = set()
    todo = [m for m in edges if folder_of(m) == "grading"]
    while todo:
        module = todo.pop()
        for target in edges[module]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    above = sorted(m for m in reached if folder_of(m) in ("ops", "cli", "docsite"))
    assert above == [], "grading/ reaches, directly or not: " + ", ".join(above)


@pytest.mark.parametrize("folder", sorted(PURE))
def test_the_pure_floors_talk_to_nothing(folder: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for module in sorted(imports_of(path)):
            if module.split(".")[0] in IMPURE_MODULES:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == [], "\n".join(wrong)


def test_no_module_is_over_500_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
