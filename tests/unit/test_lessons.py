"""Lessons: labs/LAB/lessons/{intro,STEP}.{ko,en}.md rendered into the lab pages, and checked at load.

The docs hook puts each lesson in its step's section, before the "check your work" box; a lesson file
that names no step (a step renamed or removed) is a load error naming the file, so `lab validate`,
every command that loads the lab, and the docs build all refuse it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from hyperlab.docsite.hook import generate, on_config
from hyperlab.docsite.lab_pages import lab_page, read_lessons
from hyperlab.docsite.lab_pages import lesson_lines
from hyperlab.core.errors import LabError
from hyperlab.core.load import lab_ids, load_lab
from tests.unit.clihelp import run_lab

ROOT = Path(__file__).resolve().parents[2]
LANGS = ("ko", "en")
COMPLETE = ("chapter-1", "chapter-2-linux")  # labs whose every step must have a lesson in both languages
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(autouse=True)
def in_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Problems name files relative to the working directory when below it: tmp_path is not below the checkout
    monkeypatch.chdir(ROOT)


def section(page: str, step_id: str) -> str:
    """The text of one step's section: from its heading to the next step's heading (or the end)."""
    start = page.index(f"{{#step-{step_id} ")
    end = page.find("\n### ", start)
    return page[start:] if end < 0 else page[start:end]


def copy_root(tmp_path: Path) -> Path:
    for folder in ("labs", "topologies", "schema"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


# ------------------------------------------------------------------ rendering


def test_a_lesson_is_rendered_in_its_step_section_before_the_check_box() -> None:
    loaded = load_lab("chapter-1", ROOT)
    lessons = {"intro": "INTRO-MARK: why this chapter.",
               "overlays": "# Why overlays\n\nOVERLAY-MARK: a thin layer.\n\n```sh\n# a comment, not a heading\nqemu-img info\n```\n"}
    page = lab_page(loaded, "en", lessons)

    overlays = section(page, "overlays")
    assert "OVERLAY-MARK: a thin layer." in overlays
    assert overlays.index("OVERLAY-MARK") < overlays.index('!!! success "Check your work"')
    assert "OVERLAY-MARK" not in section(page, "golden-image") + section(page, "guest-boot")
    # the lesson's own heading sits below the step's ### heading; a shell comment in code stays as written
    assert "\n#### Why overlays\n" in overlays and "\n# a comment, not a heading\n" in overlays
    # the intro comes after the summary, before the topology section
    assert page.index("confirm virtualization support") < page.index("INTRO-MARK") < page.index("## Topology")
    assert "INTRO-MARK" not in lab_page(loaded, "en")  # no lessons: no text from them


def test_lab_page_refuses_a_lesson_for_an_unknown_step() -> None:
    with pytest.raises(ValueError, match="no-such-step"):
        lab_page(load_lab("chapter-1", ROOT), "ko", {"no-such-step": "text"})


def test_headings_move_below_the_section_and_fenced_code_is_left_alone() -> None:
    text = "# A\n~~~\n# code\n```\n# still code, the fence is ~~~\n~~~\n## B\n###### C\n"
    assert lesson_lines(text, 3) == ["#### A", "~~~", "# code", "```", "# still code, the fence is ~~~", "~~~",
                                     "##### B", "###### C"]


@pytest.mark.parametrize("lab_id", lab_ids(ROOT))
def test_every_shipped_lesson_is_in_its_step_section_of_the_generated_page(lab_id: str) -> None:
    loaded = load_lab(lab_id, ROOT)
    if not (loaded.folder / "lessons").is_dir():
        assert lab_id not in COMPLETE, f"labs/{lab_id}/lessons is missing"
        return
    for lang in LANGS:
        lessons = read_lessons(loaded.folder, lang)
        assert lessons, f"labs/{lab_id}/lessons has no .{lang}.md files"
        page = lab_page(loaded, lang, lessons)
        for name, text in lessons.items():
            rendered = "\n".join(lesson_lines(text, 1 if name == "intro" else 3))
            if name == "intro":
                assert rendered in page[:page.index("{#topology}")], (lab_id, lang, name)
            else:
                where = section(page, name)
                assert rendered in where, (lab_id, lang, name)
                assert where.index(rendered) < where.index("!!! success"), (lab_id, lang, name)


@pytest.mark.parametrize("lab_id", COMPLETE)
def test_every_step_has_a_lesson_in_both_languages(lab_id: str) -> None:
    loaded = load_lab(lab_id, ROOT)
    folder = loaded.folder / "lessons"
    for step in loaded.lab.steps:
        for lang in LANGS:
            path = folder / f"{step.id}.{lang}.md"
            assert path.is_file(), f"no lesson {path.relative_to(ROOT)}"
            text = path.read_text(encoding="utf-8")
            assert len(text) > 300, f"{path.relative_to(ROOT)} is only {len(text)} characters"
            # a Korean lesson is in Korean; an English one has no Korean left in it (files not swapped)
            assert bool(HANGUL.search(text)) == (lang == "ko"), f"{path.relative_to(ROOT)} is not in {lang}"


def test_generate_renders_the_lesson_files(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    lesson = root / "labs" / "chapter-1" / "lessons" / "reset.en.md"
    lesson.parent.mkdir(exist_ok=True)
    lesson.write_text("RESET-MARK: throw the overlay away.\n", encoding="utf-8")
    (lesson.parent / "reset.ko.md").write_text("RESET-MARK-KO: 오버레이를 버린다.\n", encoding="utf-8")
    files = generate(root)
    assert "RESET-MARK: throw the overlay away." in section(files["labs/chapter-1.en.md"], "reset")
    assert "RESET-MARK-KO: 오버레이를 버린다." in section(files["labs/chapter-1.ko.md"], "reset")


# ------------------------------------------------------------------ errors


def lesson_errors(root: Path, lab_id: str = "chapter-1") -> list[str]:
    with pytest.raises(LabError) as caught:
        load_lab(lab_id, root)
    return [str(p) for p in caught.value.problems]


def test_a_lesson_for_a_renamed_step_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    lab_yaml = root / "labs" / "chapter-1" / "lab.yaml"
    text = lab_yaml.read_text(encoding="utf-8")
    assert "  - id: qemu-process\n" in text  # a step nothing requires, so the rename breaks nothing else
    lab_yaml.write_text(text.replace("  - id: qemu-process\n", "  - id: vm-is-a-process\n"), encoding="utf-8")
    lessons = root / "labs" / "chapter-1" / "lessons"
    lessons.mkdir(exist_ok=True)
    for lang in LANGS:  # whatever the shipped lessons are, this lab has lessons for the old id
        (lessons / f"qemu-process.{lang}.md").write_text("A VM is a process.\n", encoding="utf-8")

    errors = lesson_errors(root)
    for lang in LANGS:
        path = lessons / f"qemu-process.{lang}.md"
        assert any(e.startswith(f"{path}:1:1: lesson for unknown step 'qemu-process'") and "vm-is-a-process" in e
                   for e in errors), errors


def test_the_error_surfaces_in_lab_validate_and_in_the_docs_build(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    stale = root / "labs" / "chapter-1" / "lessons" / "no-such-step.ko.md"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text("잃어버린 단계의 수업.\n", encoding="utf-8")

    result = run_lab("validate", str(root / "labs" / "chapter-1" / "lab.yaml"))
    assert result.exit_code == 2
    assert f"{stale}:1:1: lesson for unknown step 'no-such-step'" in result.stderr

    from mkdocs.exceptions import PluginError

    config = SimpleNamespace(config_file_path=str(root / "mkdocs.yml"), docs_dir=str(root / "docs"), nav=[])
    with pytest.raises(PluginError, match=re.escape(f"{stale}:1:1: lesson for unknown step 'no-such-step'")):
        on_config(config)
    assert not (root / "docs" / "labs").exists()  # nothing half-generated


def test_a_lesson_in_one_language_only_or_with_a_bad_name_is_an_error(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    lessons = root / "labs" / "chapter-1" / "lessons"
    lessons.mkdir(exist_ok=True)
    (lessons / "golden-image.ko.md").write_text("골든 이미지.\n", encoding="utf-8")
    (lessons / "golden-image.en.md").unlink(missing_ok=True)
    (lessons / "notes.md").write_text("scratch\n", encoding="utf-8")
    (lessons / "reset.fr.md").write_text("réinitialiser\n", encoding="utf-8")

    errors = lesson_errors(root)
    assert f"{lessons / 'golden-image.ko.md'}:1:1: lesson 'golden-image' has no en version; write golden-image.en.md beside it" in errors
    assert any(e.startswith(f"{lessons / 'notes.md'}:1:1: notes.md is not a lesson name") for e in errors), errors
    assert any(e.startswith(f"{lessons / 'reset.fr.md'}:1:1: reset.fr.md is not a lesson name") for e in errors), errors
