"""The docs site's generated pages: a mkdocs hook (`hooks:` in mkdocs.yml).

From the same YAML the labs use, it writes, for each lab, a Korean and an English page
(`docs/labs/LAB.ko.md`, `LAB.en.md`: title, summary, topology diagram, steps with points,
requires and a "check your work" box per step) and the diagram (`docs/labs/LAB.svg`). The lesson
prose is markdown beside the lab: `labs/LAB/lessons/intro.LANG.md` (after the summary) and
`labs/LAB/lessons/STEP.LANG.md` (in that step's section, before its check box); a lesson file that
names no step is a load error (`hyperlab.core.validate`), so a renamed step cannot drop its lesson. And the
reference pages (`docs/reference/`): the CLI reference from the typer app, the lab and
topology YAML schema from `schema/*.schema.json`, and the checker API (`checkers.*.md`) from the
grading code itself (the pytest plugin's options and fixtures, Node, Probe, `eventually`, Status).

The files are written into docs_dir (git-ignored there) before mkdocs collects its files, because
mkdocs-static-i18n only sorts files that live in docs_dir by their `.ko.md` / `.en.md` suffix.
A file is only rewritten when its text changes, so `mkdocs serve` does not rebuild in a loop, and
`mkdocs serve` also watches labs/ (lessons included), topologies/ and schema/.

Everything but `on_config` / `on_serve` is pure (model in, markdown out), for the unit tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hyperlab.core.errors import LabError
from hyperlab.core.load import LoadedLab, find_root, lab_ids, load_lab
from hyperlab.core.model import Text, format_size

LANGS = ("ko", "en")
GENERATED_DIRS = ("labs", "reference")
LABS_NAV_KEY = "실습"  # the nav entry in mkdocs.yml whose children the hook fills with the labs

WORDS: dict[str, dict[str, str]] = {
    "ko": {
        "lab_id": "실습 ID",
        "topology": "토폴로지",
        "topology_alt": "{lab} 토폴로지 다이어그램",
        "nodes": "노드",
        "node": "노드",
        "image": "이미지",
        "resources": "자원",
        "addresses": "주소",
        "guests": "중첩 게스트",
        "guest": "게스트",
        "host": "호스트",
        "steps": "단계",
        "step": "단계",
        "title": "제목",
        "points": "배점",
        "requires": "선행 단계",
        "about": "대상",
        "hint": "힌트",
        "none": "없음",
        "total": "모두 {n}단계, 총 {p}점.",
        "check": "작업 확인",
        "check_body": "이 단계를 마쳤으면 다음 명령으로 확인한다.",
        "start": "실습 전에 `lab up {lab}` 명령이 준비하는 것",
        "runs_on": "{nodes}에서 `{run}` 실행",
        "student_ip": "학생이 설정",
        "labs_title": "실습",
        "labs_intro": "각 장은 실습 하나이다. 페이지는 `labs/<ID>/lab.yaml`에서 만들어진다.",
        "lab": "실습",
        "sum": "합계",
    },
    "en": {
        "lab_id": "Lab id",
        "topology": "Topology",
        "topology_alt": "{lab} topology diagram",
        "nodes": "Nodes",
        "node": "Node",
        "image": "Image",
        "resources": "Resources",
        "addresses": "Addresses",
        "guests": "Nested guests",
        "guest": "Guest",
        "host": "Host",
        "steps": "Steps",
        "step": "Step",
        "title": "Title",
        "points": "Points",
        "requires": "Requires",
        "about": "Nodes",
        "hint": "Hint",
        "none": "none",
        "total": "{n} steps, {p} points in all.",
        "check": "Check your work",
        "check_body": "When you have finished this step, check it with:",
        "start": "What `lab up {lab}` prepares before you start",
        "runs_on": "runs `{run}` on {nodes}",
        "student_ip": "set by the student",
        "labs_title": "Labs",
        "labs_intro": "Each chapter is one lab; its page is generated from `labs/<ID>/lab.yaml`.",
        "lab": "Lab",
        "sum": "Total",
    },
}


# ------------------------------------------------------------------ markdown helpers


def md(text: str, *, code: bool = False) -> str:
    """Course text -> inline markdown that shows exactly that text (C:\\smb stays C:\\smb).

    code=True keeps `backticks` as code spans (the CLI's help text uses them that way).
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return re.sub(r"([\\*_\[\]{}|#!])" if code else r"([\\`*_\[\]{}|#!])", r"\\\1", text)


def t(text: Text, lang: str) -> str:
    return getattr(text, lang)


def check_command(lab_id: str, step_id: str) -> str:
    return f"lab check {lab_id} --step {step_id}"


def step_anchor(step_id: str) -> str:
    return f"step-{step_id}"


# ------------------------------------------------------------------ lessons

LESSONS_DIR = "lessons"  # beside lab.yaml; hyperlab.core.validate rejects files in it that name no step
INTRO = "intro"  # the lesson shown after the summary; every other lesson is named by its step id
FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING_RE = re.compile(r"^(#{1,6})(\s)")


def read_lessons(folder: Path, lang: str) -> dict[str, str]:
    """`intro` or step id -> that lesson's markdown in `lang`, from FOLDER/lessons/NAME.LANG.md."""
    suffix = f".{lang}.md"
    return {path.name.removesuffix(suffix): path.read_text(encoding="utf-8")
            for path in sorted((folder / LESSONS_DIR).glob(f"*{suffix}"))}


def lesson_lines(text: str, under: int) -> list[str]:
    """A lesson's markdown placed below a heading of level `under`: its own headings move down by as
    much (a lesson's `#` becomes `####` in a step's `###` section), so they never outrank the page's
    sections. Lines in fenced code (shell comments start with `#` too) are left as they are."""
    out: list[str] = []
    fence = ""
    for line in text.strip("\n").splitlines():
        marker = FENCE_RE.match(line)
        if marker and not fence:
            fence = marker.group(1)
        elif marker and marker.group(1).startswith(fence) and not line.strip().strip(fence[0]):
            fence = ""  # a closing fence: the same character, at least as long, nothing after it
        elif not fence:
            line = HEADING_RE.sub(lambda m: "#" * min(6, len(m.group(1)) + under) + m.group(2), line)
        out.append(line)
    return out


# ------------------------------------------------------------------ lab pages


def lab_page(loaded: LoadedLab, lang: str, lessons: dict[str, str] | None = None) -> str:
    """One lab's lesson page in one language; `lessons` as `read_lessons` gives them for that language."""
    lab, topo = loaded.lab, loaded.topology.topology
    lessons = lessons or {}
    w = WORDS[lang]
    total = sum(s.points for s in lab.steps)
    unknown = set(lessons) - {INTRO, *(s.id for s in lab.steps)}
    if unknown:  # load_lab already refuses such files; a caller's dict must not lose text silently either
        raise ValueError(f"lessons for unknown steps of {lab.id}: {', '.join(sorted(unknown))}")
    out = [f"# {md(t(lab.title, lang))}", ""]
    out += [f"{w['lab_id']}: `{lab.id}` · {w['topology']}: `{topo.name}`", ""]
    if lab.summary:
        out += [md(t(lab.summary, lang)), ""]
    out += [w["total"].format(n=len(lab.steps), p=total), ""]
    if lessons.get(INTRO):
        out += [*lesson_lines(lessons[INTRO], 1), ""]

    out += [f"## {w['topology']} {{#topology}}", ""]
    out += ['<figure class="hl-diagram" markdown>', f"![{w['topology_alt'].format(lab=lab.id)}]({lab.id}.svg)", "</figure>", ""]
    out += [f"| {w['node']} | {w['image']} | {w['resources']} | {w['addresses']} |", "| --- | --- | --- | --- |"]
    for name, node in topo.nodes.items():
        addresses = ", ".join(
            f"{nic.network} {nic.ip if nic.ip else '?'}" + (f" ({w['student_ip']})" if nic.set_by == "student" else "")
            for nic in node.nics
        ) or "-"
        resources = f"{node.vcpus} vCPU, {format_size(node.memory)}" + (", nested" if node.nested else "")
        out.append(f"| {md(name)} | `{node.image}` | {resources} | {md(addresses)} |")
    out.append("")
    if lab.guests:
        out += [f"**{w['guests']}**", "", f"| {w['guest']} | {w['host']} | {w['addresses']} |", "| --- | --- | --- |"]
        for name, guest in lab.guests.items():
            addresses = ", ".join(f"{nic.switch} {nic.ip if nic.ip else '?'}" for nic in guest.nics) or "-"
            out.append(f"| {md(name)} | {md(guest.host)} | {md(addresses)} |")
        out.append("")
    if lab.start:
        out += [f"??? info \"{w['start'].format(lab=lab.id)}\"", ""]
        for action in lab.start:
            out.append("    - " + w["runs_on"].format(run=action.run, nodes=", ".join(action.nodes)))
        out.append("")

    out += [f"## {w['steps']} {{#steps}}", ""]
    out += [f"| # | {w['step']} | {w['points']} | {w['requires']} |", "| ---: | --- | ---: | --- |"]
    titles = {s.id: t(s.title, lang) for s in lab.steps}
    for number, step in enumerate(lab.steps, 1):
        requires = ", ".join(f"[{md(r)}](#{step_anchor(r)})" for r in step.requires) or "-"
        out.append(f"| {number} | [{md(titles[step.id])}](#{step_anchor(step.id)}) | {step.points} | {requires} |")
    out += [f"| | **{w['sum']}** | **{total}** | |", ""]

    for number, step in enumerate(lab.steps, 1):
        out += [f'### {number}. {md(titles[step.id])} {{#{step_anchor(step.id)} .hl-step data-step="{step.id}" data-points="{step.points}"}}', ""]
        facts = [f"**{w['points']}**: {step.points}"]
        if step.requires:
            facts.append(f"**{w['requires']}**: " + ", ".join(
                f"[{md(titles.get(r, r))}](#{step_anchor(r)})" for r in step.requires))
        if step.nodes:
            facts.append(f"**{w['about']}**: " + ", ".join(md(n) for n in step.nodes))
        out += [" · ".join(facts), ""]
        if lessons.get(step.id):
            out += [*lesson_lines(lessons[step.id], 3), ""]
        if step.hint:
            out += [f"??? tip \"{w['hint']}\"", "", f"    {md(t(step.hint, lang))}", ""]
        out += [f"!!! success \"{w['check']}\"", "", f"    {w['check_body']}", "",
                "    ```sh", f"    {check_command(lab.id, step.id)}", "    ```", ""]
    return "\n".join(out)


def labs_index(labs: list[LoadedLab], lang: str) -> str:
    w = WORDS[lang]
    out = [f"# {w['labs_title']}", "", w["labs_intro"], "",
           f"| {w['lab']} | {w['title']} | {w['steps']} | {w['points']} |", "| --- | --- | ---: | ---: |"]
    for loaded in labs:
        lab = loaded.lab
        out.append(f"| `{lab.id}` | [{md(t(lab.title, lang))}]({lab.id}.md) | {len(lab.steps)} | "
                   f"{sum(s.points for s in lab.steps)} |")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ CLI reference


def _param_kind(p: Any) -> str:
    """The value's type as a reader wants it: text, integer, number, path, flag, list of ..."""
    if getattr(p, "is_flag", False):
        return "flag"
    annotation = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    if annotation is None:
        return str(getattr(getattr(p, "type", None), "name", "text")).lower()
    import typing

    shown = str(annotation) if typing.get_origin(annotation) else getattr(annotation, "__name__", str(annotation))
    text = re.sub(r"\b(typing|pathlib)\.", "", shown)
    text = text.replace(" | None", "").replace("Optional[", "").rstrip("]") if "None" in text else text
    names = {"str": "text", "int": "integer", "float": "number", "Path": "path", "bool": "flag"}
    if text.startswith("list["):
        return "list of " + names.get(text[5:].rstrip("]"), text[5:].rstrip("]"))
    return names.get(text, text)


def _arg_name(p: Any) -> str:
    return str(p.name).upper()


def cli_reference(lang: str) -> str:
    """Every command and option of `lab`, from the typer app (its help text is English).

    Duck-typed over click's classes: typer >= 0.16 carries its own copy of click (typer._click).
    """
    import typer

    from hyperlab.cli import app

    root = typer.main.get_command(app)
    ko = lang == "ko"
    out = ["# " + ("명령줄 참조: `lab`" if ko else "Command-line reference: `lab`"), ""]
    out += [("`lab`의 모든 명령과 옵션. 코드에서 만들어지며, 설명은 영어이다." if ko
             else "Every command and option of `lab`, generated from the code."), ""]
    if root.help:
        out += [md(root.help), ""]

    def walk(command: Any, path: list[str]) -> None:
        if isinstance(getattr(command, "commands", None), dict):  # a group: `lab`, `lab image`
            for name, sub in command.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])
            return
        name = " ".join(path)
        out.extend([f"## `{name}` {{#{'-'.join(path[1:]) or 'lab'}}}", ""])
        if command.help:
            out.extend([md(command.help.strip().split("\n\n")[0], code=True), ""])
        usage = [name]
        for p in command.params:
            if p.param_type_name == "argument":
                name_ = _arg_name(p) + ("..." if p.nargs == -1 else "")
                usage.append(name_ if p.required else f"[{name_}]")
        if any(p.param_type_name == "option" for p in command.params):
            usage.insert(1, "[OPTIONS]")
        out.extend(["```sh", " ".join(usage), "```", ""])
        rows = []
        for p in command.params:
            if getattr(p, "hidden", False):
                continue
            help_text = md(getattr(p, "help", None) or "", code=True)
            if p.param_type_name == "argument":
                what = f"`{_arg_name(p)}`"
                kind = _param_kind(p) + ((", 필수" if ko else ", required") if p.required else "")
            else:
                names = [*p.opts, *p.secondary_opts]
                what = ", ".join(f"`{n}`" for n in names)
                kind = _param_kind(p)
            default = p.default
            default_text = "" if default in (None, False, ()) or callable(default) else f"`{default}`"
            rows.append(f"| {what} | {kind} | {default_text} | {help_text} |")
        if rows:
            out.extend([("| 인수/옵션 | 종류 | 기본값 | 설명 |" if ko else "| Argument/option | Kind | Default | Description |"),
                        "| --- | --- | --- | --- |", *rows, ""])

    walk(root, ["lab"])
    return "\n".join(out)


# ------------------------------------------------------------------ schema reference


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"mapping of name → {_type_of(prop['additionalProperties'])}"
    if kind == "null":
        return "null"
    fmt = prop.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _properties_table(obj: dict[str, Any], ko: bool) -> list[str]:
    required = set(obj.get("required", []))
    rows = ["| " + (" | ".join(("필드", "종류", "필수", "기본값", "설명") if ko else ("Field", "Type", "Required", "Default", "Description"))) + " |",
            "| --- | --- | --- | --- | --- |"]
    for name, prop in obj.get("properties", {}).items():
        default = f"`{json.dumps(prop['default'], ensure_ascii=False)}`" if "default" in prop and prop["default"] is not None else ""
        limits = [f"{k} {prop[k]}" for k in ("minimum", "maximum", "minLength", "minItems", "minProperties") if k in prop]
        desc = md(prop.get("description", "")) + (" (" + ", ".join(limits) + ")" if limits else "")
        rows.append(f"| `{name}` | {_type_of(prop)} | {'✓' if name in required else ''} | {default} | {desc.strip()} |")
    return rows


def schema_reference(schema: dict[str, Any], kind: str, lang: str) -> str:
    ko = lang == "ko"
    names = {"lab": ("실습 YAML 스키마", "Lab YAML schema"), "topology": ("토폴로지 YAML 스키마", "Topology YAML schema")}
    out = [f"# {names[kind][0 if ko else 1]}", ""]
    out += [(f"`schema/{kind}.schema.json`에서 만들어진다. 알 수 없는 키는 오류이다 (`lab validate`)." if ko else
             f"Generated from `schema/{kind}.schema.json`. Unknown keys are errors (`lab validate`)."), ""]
    out += [f"## {schema.get('title', kind)} {{#top}}", "", *_properties_table(schema, ko), ""]
    for name, definition in schema.get("$defs", {}).items():
        out += [f"## {name} {{#{name.lower()}}}", ""]
        if definition.get("description"):
            out += [md(definition["description"]), ""]
        out += [*_properties_table(definition, ko), ""]
    return "\n".join(out)


# ------------------------------------------------------------------ checker API reference
#
# Read from the objects checkers use: the pytest plugin's options and fixtures, the classes behind
# them (Instance, Node, Probe, their results), `eventually`, the outcome states. Docstrings stay in
# English on both pages; headings and the connecting text follow the page's language.

CHECKER_WORDS: dict[str, dict[str, str]] = {
    "ko": {
        "title": "채점기(checker) API 참조",
        "intro": "채점기가 쓰는 모든 것: pytest 옵션, 픽스처, 노드와 프로브의 메서드, `eventually`, 결과 상태. "
                 "`hyperlab.grading`의 코드에서 만들어지며, 설명(docstring)은 영어이다. "
                 "채점기를 쓰는 방법은 [실습 만들기](../guide/authors.md)에 있다.",
        "marker": "단계 마커",
        "marker_body": "채점기 함수마다 붙인다. 단계 ID는 `lab.yaml`의 단계와 이어지며, 모르는 ID는 수집(collection) 때 오류이다. "
                       "배점은 `lab.yaml`에서 오고, 마커가 받는 것은 `weight=`(양수, 기본 1)뿐이다. "
                       "한 단계의 배점은 그 단계 채점기들의 weight 비율로 나뉜다(부분 점수).",
        "registered": "pytest에 등록된 설명",
        "fixtures": "픽스처",
        "fixtures_body": "`checkers/<lab>/` 안의 채점기만 쓸 수 있다. 연결은 실행마다 노드당 하나이며 모든 채점기가 함께 쓴다.",
        "returns": "참고",
        "instance": "Instance (`lab` 픽스처)",
        "node": "Node (`node(\"이름\")`)",
        "attributes": "속성",
        "members": "멤버",
        "runresult": "RunResult (명령의 결과)",
        "probe": "Probe (`probe` 픽스처)",
        "probe_body": "모든 프로브는 인스턴스의 네트워크 네임스페이스(실습 주소가 보이는 곳)에서 실행되고, "
                      "`timeout`을 주지 않으면 {timeout:g}초를 기다린다. 결과는 예외가 아니라 항상 `ProbeResult`이다.",
        "calls": "호출하는 함수",
        "proberesult": "ProbeResult (프로브의 결과)",
        "outcomes": "Outcome 값",
        "eventually": "eventually",
        "status": "결과 상태",
        "status_body": "채점기 하나의 결과는 다음 넷 중 하나이고, 단계의 결과는 그 단계 채점기들의 결과에서 나온다 "
                       "(ERROR가 BLOCKED보다, BLOCKED가 FAIL보다 우선).",
        "raised": "채점기에서 일어난 일 → 상태",
        "exceptions": "예외",
        "options": "pytest 옵션",
        "options_body": "`pytest checkers/<lab>`에 줄 수 있는 옵션(그룹 `hyperlab`). `lab check`와 `lab grade`도 이 옵션으로 pytest를 실행한다.",
        "option": "옵션",
        "value": "값",
        "default": "기본값",
        "description": "설명",
        "field": "필드",
        "meaning": "뜻",
        "state": "상태",
        "repeatable": "반복 가능",
        "integer": "정수",
        "text": "텍스트",
        "one_of": "다음 중 하나: ",
    },
    "en": {
        "title": "Checker API reference",
        "intro": "Everything a checker uses: the pytest options, the fixtures, the methods of nodes and probes, "
                 "`eventually` and the result states. Generated from the code of `hyperlab.grading`. "
                 "How to write checkers: [Writing labs](../guide/authors.md).",
        "marker": "The step marker",
        "marker_body": "Every checker function carries one. The step id ties the checker to the step in `lab.yaml`; an unknown "
                       "id is an error at collection. Points come from `lab.yaml`; the only argument the marker takes is "
                       "`weight=` (a positive number, default 1). A step's points are split among its checkers by "
                       "weight (partial credit).",
        "registered": "As registered with pytest",
        "fixtures": "Fixtures",
        "fixtures_body": "Only for checkers in `checkers/<lab>/`. Connections are opened once per node per run and shared "
                         "by every checker.",
        "returns": "See",
        "instance": "Instance (the `lab` fixture)",
        "node": "Node (`node(\"NAME\")`)",
        "attributes": "Attributes",
        "members": "Members",
        "runresult": "RunResult (what a command returns)",
        "probe": "Probe (the `probe` fixture)",
        "probe_body": "Every probe runs in the instance's network namespace (where the lab's addresses are) and waits "
                      "{timeout:g} s unless given `timeout=`. It always returns a `ProbeResult`, never raises for a "
                      "network condition.",
        "calls": "Calls",
        "proberesult": "ProbeResult (what a probe returns)",
        "outcomes": "Outcome values",
        "eventually": "eventually",
        "status": "Result states",
        "status_body": "Each checker ends in one of four states; a step's state comes from its checkers' "
                       "(ERROR wins over BLOCKED, BLOCKED over FAIL).",
        "raised": "What happened in the checker → state",
        "exceptions": "Exceptions",
        "options": "pytest options",
        "options_body": "Options of `pytest checkers/<lab>` (group `hyperlab`). `lab check` and `lab grade` run pytest with them.",
        "option": "Option",
        "value": "Value",
        "default": "Default",
        "description": "Description",
        "field": "Field",
        "meaning": "Meaning",
        "state": "State",
        "repeatable": "repeatable",
        "integer": "integer",
        "text": "text",
        "one_of": "one of ",
    },
}

# What each state means, in Korean (the English comes from hyperlab.grading.outcome's docstring).
STATUS_KO = {
    "PASS": "단계가 요구하는 상태가 있다.",
    "FAIL": "없다. 메시지가 관찰한 값과 기대한 값을 말한다. 학생의 작업이 틀렸다.",
    "BLOCKED": "검사하지 않았다. 이 단계가 요구하는 단계(requires)가 통과하지 못했다.",
    "ERROR": "검사할 수 없었다(노드에 닿지 않음, 에이전트 멈춤, 자격 증명, 채점기 버그). 학생의 잘못이 아니며 점수 0이 아니다.",
}

# Members of Instance that checkers use (the rest serve the plugin: conn, missing, domain_uuids, close).
INSTANCE_MEMBERS = ("lab", "instance", "ip", "variables", "netns", "node")
# Public members of Node and Probe that are the plugin's business, not a checker's.
NOT_FOR_CHECKERS = frozenset({"close"})
# For members whose code has no docstring yet (keyed by anchor); a docstring in the code wins.
FALLBACK_DOCS = {
    "instance-lab": "The lab id.",
    "instance-instance": "The instance name (`default`, or the student's `--instance`).",
    "instance-variables": "The lab's `variables:` from lab.yaml (e.g. `lab.variables[\"replication_interval_seconds\"]`).",
    "instance-netns": "The network namespace that plays the lesson's host (where `probe` runs); "
                      "`ip netns exec NAME ...` runs a command there.",
    "instance-node": "The same as the `node` fixture: `lab.node(\"DC1\")`.",
    "node-channel": "The node's open channel (agent, ssh or winrm), opened on first use.",
    "node-sh": "`run` for Linux nodes: a shell command (sh -c). On a Windows node it raises CheckError (ERROR).",
    "node-ps": "`run` for Windows nodes: a PowerShell script. On a Linux node it raises CheckError (ERROR).",
    "node-read_file": "The bytes of a file on the node, read through its channel.",
    "runresult-ok": "True when the command exited 0 and did not time out.",
    "proberesult-ok": "True when the outcome is `ok`; a ProbeResult is also true or false by itself (`assert result`).",
}
NODE_ATTRIBUTES = {"name": "The node's name in the topology (`DC1`).",
                   "os": "`linux` or `windows`: which of `.sh` / `.ps` works on it.",
                   "plan": "The node's PlanNode: domain name, NICs, volumes (see `lab plan`)."}


class _Ann(str):
    """An annotation or default shown as written (`str | None`, `bool`), not quoted or as `<class 'bool'>`."""

    def __repr__(self) -> str:
        return str(self)


def _shown(annotation: Any) -> Any:
    if isinstance(annotation, str):
        return _Ann(re.sub(r"\bprobes\.", "", annotation))
    return annotation


def _signature(name: str, fn: Any, *, drop_first: bool = True, drop: tuple[str, ...] = ()) -> str:
    import inspect

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


def doc_text(doc: str | None) -> str:
    """A docstring as markdown: paragraphs kept, lines joined, `code` kept, everything else shown as written."""
    import inspect

    out = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc or "")):
        text = " ".join(line.strip() for line in para.splitlines())
        parts = re.split(r"(``.+?``|`[^`]+`)", text)
        rendered = "".join(("`" + p.strip("`") + "`") if i % 2 else md(p) for i, p in enumerate(parts))
        if rendered:
            out.append(rendered)
    return "\n\n".join(out)


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
    text = doc_text(doc or FALLBACK_DOCS.get(anchor))
    return out + ([text, ""] if text else [])


def plugin_options() -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The plugin's command-line options, read by calling its pytest_addoption with a recording parser."""
    from hyperlab.grading import plugin

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
    from hyperlab.grading import plugin

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
    from hyperlab.grading import plugin

    found = {}
    for attr, obj in vars(plugin).items():
        if type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(obj, "_pytestfixturefunction"):
            found[getattr(obj, "name", None) or attr] = obj
    return found


def probe_functions() -> dict[str, Any]:
    """Probe method name -> the hyperlab.probes function it runs (found by calling it with a recording `_run`)."""
    import inspect

    from hyperlab.grading.target import Probe, Recorder

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
    from hyperlab.grading import outcome

    meanings = {}
    for match in re.finditer(r"^- ([A-Z]+)\s+(.+?)(?=^- |\n\n|\Z)", outcome.__doc__ or "", re.M | re.S):
        meanings[match.group(1)] = " ".join(match.group(2).split()).rstrip(";.") + "."
    return meanings


def unreachable_exceptions() -> list[type]:
    """The exceptions that make a check ERROR ("could not look") rather than a checker error."""
    import libvirt

    from hyperlab.guest.base import ChannelError
    from hyperlab.host.conn import HostProblem
    from hyperlab.probes import NetnsError
    from hyperlab.grading.target import CheckError

    return [ChannelError, CheckError, HostProblem, NetnsError, libvirt.libvirtError]


def checkers_reference(lang: str) -> str:
    """The checker API page: options, marker, fixtures, Instance, Node, RunResult, Probe, eventually, states."""
    import warnings

    with warnings.catch_warnings():
        # ldap3, imported with the probes, still uses pyasn1's deprecated names: not this page's news
        warnings.simplefilter("ignore", DeprecationWarning)
        return _checkers_page(lang)


def _checkers_page(lang: str) -> str:
    import dataclasses

    from hyperlab.grading.eventually import eventually
    from hyperlab.grading.outcome import Status
    from hyperlab.grading.target import Instance, Node, Probe, Recorder
    from hyperlab.guest.base import RunResult
    from hyperlab.probes import DEFAULT_TIMEOUT, ProbeResult
    from hyperlab.probes.base import MEANING, Outcome

    w = CHECKER_WORDS[lang]
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
    from types import SimpleNamespace

    sample = Node(SimpleNamespace(name="N", os="linux"), lambda: None, Recorder())  # type: ignore[arg-type,return-value]
    attributes = [a for a in vars(sample) if not a.startswith("_")]
    out += [f"**{w['attributes']}**", "", f"| {w['field']} | {w['description']} |", "| --- | --- |"]
    out += [f"| `{a}` | {doc_text(NODE_ATTRIBUTES.get(a, ''))} |" for a in attributes] + [""]
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
        meaning = STATUS_KO.get(status.value) if ko else None
        out.append(f"| `{status.value}` | {md(meaning or meanings.get(status.value, ''))} |")
    out += ["", f"**{w['raised']}**", "", f"| {w['exceptions']} | {w['state']} |", "| --- | --- |",
            "| " + ("정상 종료" if ko else "returns normally") + " | `PASS` |",
            "| `AssertionError` (" + ("메시지가 그대로 학생에게 보인다" if ko else "its message is what the student sees")
            + ") | `FAIL` |",
            "| " + ", ".join(f"`{e.__name__}`" for e in unreachable_exceptions()) + " | `ERROR` (could not check) |",
            "| " + ("그 밖의 예외" if ko else "any other exception") + " | `ERROR` (checker error) |",
            "| " + ("선행 단계가 PASS가 아님" if ko else "a required step did not pass") + " | `BLOCKED` |", ""]
    out += [f"### `CheckError` {{#checkerror}}", "", doc_text(unreachable_exceptions()[1].__doc__), ""]

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


# ------------------------------------------------------------------ the whole generated tree


def generate(root: Path) -> dict[str, str]:
    """Relative path under docs_dir -> file text, for every generated file."""
    labs = [load_lab(lab_id, root) for lab_id in lab_ids(root)]
    files: dict[str, str] = {"labs/.gitignore": "# generated by hyperlab.docsite.hook\n*\n!.gitignore\n",
                             "reference/.gitignore": "# generated by hyperlab.docsite.hook\n*\n!.gitignore\n"}
    from hyperlab.render.diagram import diagram_svg

    for loaded in labs:
        files[f"labs/{loaded.lab.id}.svg"] = diagram_svg(loaded)
        for lang in LANGS:
            files[f"labs/{loaded.lab.id}.{lang}.md"] = lab_page(loaded, lang, read_lessons(loaded.folder, lang))
    for lang in LANGS:
        files[f"labs/index.{lang}.md"] = labs_index(labs, lang)
        files[f"reference/cli.{lang}.md"] = cli_reference(lang)
        files[f"reference/checkers.{lang}.md"] = checkers_reference(lang)
        for kind in ("lab", "topology"):
            schema = json.loads((root / "schema" / f"{kind}.schema.json").read_text(encoding="utf-8"))
            files[f"reference/{kind}-schema.{lang}.md"] = schema_reference(schema, kind, lang)
    return files


def write_generated(docs_dir: Path, files: dict[str, str]) -> list[str]:
    """Write changed files, remove stale ones in the generated folders; returns what changed."""
    changed = []
    for rel, text in files.items():
        path = docs_dir / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    for folder in GENERATED_DIRS:
        for path in (docs_dir / folder).rglob("*"):
            rel = path.relative_to(docs_dir).as_posix()
            if path.is_file() and rel not in files:
                path.unlink()
                changed.append(rel)
    return changed


def labs_nav(files: dict[str, str]) -> list[str]:
    """The Labs section of the nav: the overview, then one chapter per lab in id order."""
    ids = sorted(rel[len("labs/"):-len(".ko.md")] for rel in files if rel.startswith("labs/") and rel.endswith(".ko.md"))
    return ["labs/index.md", *(f"labs/{i}.md" for i in ids if i != "index")]


# ------------------------------------------------------------------ mkdocs events


def on_config(config: Any) -> Any:
    from mkdocs.exceptions import PluginError

    root = find_root(Path(config.config_file_path).parent)
    try:
        files = generate(root)
    except LabError as exc:  # a lab's mistake (a lesson for a step that is gone...): file:line lines, no traceback
        raise PluginError(f"hyperlab.docsite.hook: the labs do not load:\n{exc}") from exc
    write_generated(Path(config.docs_dir), files)
    for item in config.nav or []:
        if isinstance(item, dict) and LABS_NAV_KEY in item:
            item[LABS_NAV_KEY] = labs_nav(files)
    return config


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    root = find_root(Path(config.config_file_path).parent)
    for folder in ("labs", "topologies", "schema"):
        server.watch(str(root / folder))
    return server
