"""The docs hook's generated pages (pure: no mkdocs build, no browser)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer

from hyperlab.cli.main import app
from hyperlab.docsite.lab_pages import check_command
from hyperlab.docsite.checkers_page import checkers_reference
from hyperlab.docsite.cli_page import cli_reference
from hyperlab.docsite.hook import generate, labs_nav, write_generated
from hyperlab.docsite.lab_pages import TOPOLOGY, lab_page
from hyperlab.docsite.schema_page import schema_reference
from hyperlab.core.load import load_lab

ROOT = Path(__file__).resolve().parents[2]
STEP_RE = re.compile(r'^### (\d+)\. (.+) \{#step-([a-z0-9-]+) \.hl-step data-step="([a-z0-9-]+)" data-points="(\d+)"\}$', re.M)


def steps_of(page: str) -> list[tuple[str, int]]:
    return [(m.group(4), int(m.group(5))) for m in STEP_RE.finditer(page)]


def test_chapter_2_has_all_steps_with_points_in_both_languages() -> None:
    loaded = load_lab("chapter-2", ROOT)
    expected = [(s.id, s.points) for s in loaded.lab.steps]
    assert len(expected) == 18
    pages = {lang: lab_page(loaded, lang) for lang in ("ko", "en")}
    for lang, page in pages.items():
        assert steps_of(page) == expected, lang
        for step in loaded.lab.steps:
            # its title in that language, its check command, and its requires as links
            assert getattr(step.title, lang).replace("\\", "\\\\") in page
            assert f"    {check_command('chapter-2', step.id)}\n" in page
            for req in step.requires:
                assert f"(#step-{req})" in page
        assert page.count('!!! success "') == 18
    assert steps_of(pages["ko"]) == steps_of(pages["en"])
    assert "작업 확인" in pages["ko"] and "Check your work" in pages["en"]
    assert "모두 18단계, 총 100점." in pages["ko"] and "18 steps, 100 points in all." in pages["en"]


def test_the_page_holds_its_diagrams_inline_and_keeps_the_steps_out_of_the_search() -> None:
    loaded = load_lab("chapter-2", ROOT)
    diagrams = {TOPOLOGY: '<svg class="hl-topo">T</svg>\n', "switches": '<svg class="hl-topo">S</svg>\n'}
    for lang, words in (("ko", ("전체 크기로 보기", "토폴로지에서 이 단계가 다루는 곳")), ("en", ("Full size", "Where this step happens"))):
        page = lab_page(loaded, lang, diagrams=diagrams)
        figure = page.index('<figure class="hl-diagram" id="diagram">\n<svg class="hl-topo">T</svg>\n<figcaption>')
        assert page.index("{#topology}") < figure < page.index("| --- |")  # under the heading, before the table
        assert '<a href="../chapter-2.svg">' + words[0] in page
        # the step's own diagram, closed, in its section, before its lesson and hint
        step = page.index('{#step-switches ')
        details = page.index('<details class="abstract hl-step-diagram" data-search-exclude><summary>' + words[1])
        assert step < details < page.index("<svg class=\"hl-topo\">S</svg>\n</details>") < page.index('??? tip', step)
        assert page.count("hl-step-diagram") == 1  # only the steps given a diagram get one
        assert "<svg" not in lab_page(loaded, lang)  # no diagrams given: none drawn


def test_addresses_the_lab_does_not_give_say_why() -> None:
    """The node and guest tables say DHCP, set by the student, or no address: never '?'."""
    c2 = lab_page(load_lab("chapter-2", ROOT), "en")
    assert "| Linux01 | SVR2 | External no address |" in c2
    test_lab = load_lab(ROOT / "tests" / "data" / "labs" / "diagram" / "lab.yaml", ROOT)
    for lang, dhcp, none in (("en", "DHCP", "no address"), ("ko", "DHCP", "주소 없음")):
        page = lab_page(test_lab, lang)
        assert f"| LAPTOP | `debian-12` | 1 vCPU, 512MiB | outside {dhcp} |" in page
        assert f"| roamer | HV2 | Uplink {dhcp}, Island {none} |" in page
        assert "?" not in page.split("{#topology}")[1].split("{#steps}")[0]


def _copy_root(tmp_path: Path) -> Path:
    for folder in ("labs", "topologies", "schema"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_changing_a_step_in_lab_yaml_changes_the_page(tmp_path: Path) -> None:
    root = _copy_root(tmp_path)
    before = generate(root)
    lab_yaml = root / "labs" / "chapter-2" / "lab.yaml"
    text = lab_yaml.read_text(encoding="utf-8")
    old_title = 'title: {ko: "DC1에 smb 공유 폴더 만들기", en: "Share C:\\\\smb on DC1 as smb"}\n    points: 5'
    assert old_title in text
    text = text.replace(old_title, 'title: {ko: "공유 폴더 바꾼 제목", en: "A changed share title"}\n    points: 7')
    lab_yaml.write_text(text, encoding="utf-8")
    after = generate(root)

    for lang, title in (("ko", "공유 폴더 바꾼 제목"), ("en", "A changed share title")):
        rel = f"labs/chapter-2.{lang}.md"
        assert before[rel] != after[rel]
        assert title in after[rel] and title not in before[rel]
        assert ("smb-share", 7) in steps_of(after[rel]) and ("smb-share", 5) in steps_of(before[rel])
    assert "102" in after["labs/index.en.md"]  # the lab total follows the points
    # the other labs' pages did not change
    assert before["labs/chapter-1.en.md"] == after["labs/chapter-1.en.md"]


def test_write_generated_is_idempotent_and_removes_stale_pages(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    files = generate(ROOT)
    assert set(write_generated(docs, files)) == set(files)
    assert write_generated(docs, files) == []  # unchanged text is not rewritten: `mkdocs serve` does not loop
    stale = docs / "labs" / "gone.en.md"
    stale.write_text("# gone\n")
    assert write_generated(docs, files) == ["labs/gone.en.md"] and not stale.exists()
    for lang, title in (("ko", "chapter-2 토폴로지"), ("en", "chapter-2 topology")):
        svg = (docs / "labs" / f"chapter-2.{lang}.svg").read_text()  # mkdocs-static-i18n serves it as chapter-2.svg
        assert svg.startswith("<svg") and f'aria-label="{title}"' in svg
    assert labs_nav(files) == ["labs/index.md", "labs/chapter-1.md", "labs/chapter-2.md", "labs/chapter-2-linux.md"]


def test_cli_reference_lists_every_command_and_option() -> None:
    pages = {lang: cli_reference(lang) for lang in ("ko", "en")}
    seen = 0

    def walk(command: Any, path: list[str]) -> None:  # typer carries its own click: duck typing
        nonlocal seen
        if isinstance(getattr(command, "commands", None), dict):
            for name, sub in command.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])
            return
        seen += 1
        for page in pages.values():
            assert f"## `{' '.join(path)}`" in page
            for param in command.params:
                for name in (param.opts if param.param_type_name == "option" else [param.name.upper()]):
                    assert f"`{name}`" in page, (path, name)

    walk(typer.main.get_command(app), ["lab"])
    assert seen >= 10


def test_schema_reference_lists_every_field() -> None:
    for kind in ("lab", "topology"):
        schema = json.loads((ROOT / "schema" / f"{kind}.schema.json").read_text())
        for lang in ("ko", "en"):
            page = schema_reference(schema, kind, lang)
            for definition in (schema, *schema["$defs"].values()):
                for field in definition.get("properties", {}):
                    assert f"| `{field}` |" in page
            for name in schema["$defs"]:
                assert f"## {name} {{#{name.lower()}}}" in page


def test_checkers_reference_lists_every_fixture_method_option_and_state(pytestconfig: pytest.Config) -> None:
    """The checker API page is read from the code, so a new fixture, method or option shows up by itself."""
    from _pytest.fixtures import getfixturemarker

    from hyperlab.docsite.checkers_page import NOT_FOR_CHECKERS, probe_functions
    from hyperlab.grading import plugin
    from hyperlab.grading.session import LAB_FIXTURES
    from hyperlab.grading.outcome import Status
    from hyperlab.grading.target import Node, Probe

    fixtures = [name for name, obj in vars(plugin).items() if getfixturemarker(obj) is not None]
    assert set(LAB_FIXTURES) <= set(fixtures)
    options = [name for option in pytestconfig._parser.getgroup("hyperlab").options for name in option.names()]
    assert "--roster" in options and "--instance" in options
    assert NOT_FOR_CHECKERS == {"close"}  # the only public members left out, on purpose
    node_members = [n for n in dir(Node) if not n.startswith("_") and n not in NOT_FOR_CHECKERS]
    probe_members = [n for n in dir(Probe) if not n.startswith("_") and n not in NOT_FOR_CHECKERS]
    assert {"run", "sh", "ps", "ps_json", "read_file"} <= set(node_members)
    assert set(probe_functions()) == set(probe_members)  # every probe method shows the probe it runs

    for lang in ("ko", "en"):
        page = checkers_reference(lang)
        for name in fixtures:
            assert f"### `{name}` {{#fixture-{name}}}" in page, (lang, name)
        for name in node_members:
            assert f"### `node.{name}` {{#node-{name}}}" in page, (lang, name)
        for name in probe_members:
            assert f"### `probe.{name}` {{#probe-{name}}}" in page, (lang, name)
        for name in ("ip", "variables", "netns"):
            assert f"### `lab.{name}` {{#instance-{name}}}" in page, (lang, name)
        for option in options:
            assert f"| `{option}` |" in page, (lang, option)
        for status in Status:
            assert f"| `{status.value}` |" in page, (lang, status)
        assert "until `until(value)` is true" in page  # eventually's own docstring
        assert '@pytest.mark.step("STEP-ID", weight=1)' in page
        anchors = re.findall(r"\{#([a-z0-9_-]+)\}", page)
        assert len(anchors) == len(set(anchors)), "duplicate anchors"
    assert "## 픽스처" in checkers_reference("ko") and "## Fixtures" in checkers_reference("en")


def test_checkers_reference_names_exactly_the_exceptions_the_plugin_counts_as_error() -> None:
    from hyperlab.grading.unreachable import COULD_NOT_CHECK, unreachable

    row = next(line for line in checkers_reference("en").splitlines() if "(could not check)" in line)
    named = re.findall(r"`(\w+)`", row.split("|")[1])
    assert named == [cls.__name__ for cls in COULD_NOT_CHECK]
    for cls in COULD_NOT_CHECK:
        assert unreachable(cls.__new__(cls)), cls
    assert not unreachable(AssertionError("wrong state")) and not unreachable(KeyError("bug"))


def test_generate_writes_the_checker_reference_in_both_languages() -> None:
    files = generate(ROOT)
    assert files["reference/checkers.ko.md"].startswith("# 채점기(checker) API 참조")
    assert files["reference/checkers.en.md"].startswith("# Checker API reference")
