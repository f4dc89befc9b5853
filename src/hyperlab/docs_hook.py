"""The docs site's generated pages: a mkdocs hook (`hooks:` in mkdocs.yml).

From the same YAML the labs use, it writes, for each lab, a Korean and an English page
(`docs/labs/LAB.ko.md`, `LAB.en.md`: title, summary, topology diagram, steps with points,
requires and a "check your work" box per step) and the diagram (`docs/labs/LAB.svg`); and the
reference pages (`docs/reference/`): the CLI reference from the typer app and the lab and
topology YAML schema from `schema/*.schema.json`.

The files are written into docs_dir (git-ignored there) before mkdocs collects its files, because
mkdocs-static-i18n only sorts files that live in docs_dir by their `.ko.md` / `.en.md` suffix.
A file is only rewritten when its text changes, so `mkdocs serve` does not rebuild in a loop, and
`mkdocs serve` also watches labs/, topologies/ and schema/.

Everything but `on_config` / `on_serve` is pure (model in, markdown out), for the unit tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hyperlab.load import LoadedLab, find_root, lab_ids, load_lab
from hyperlab.model import Text, format_size

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


# ------------------------------------------------------------------ lab pages


def lab_page(loaded: LoadedLab, lang: str) -> str:
    """One lab's lesson page in one language."""
    lab, topo = loaded.lab, loaded.topology.topology
    w = WORDS[lang]
    total = sum(s.points for s in lab.steps)
    out = [f"# {md(t(lab.title, lang))}", ""]
    out += [f"{w['lab_id']}: `{lab.id}` · {w['topology']}: `{topo.name}`", ""]
    if lab.summary:
        out += [md(t(lab.summary, lang)), ""]
    out += [w["total"].format(n=len(lab.steps), p=total), ""]

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


# ------------------------------------------------------------------ the whole generated tree


def generate(root: Path) -> dict[str, str]:
    """Relative path under docs_dir -> file text, for every generated file."""
    labs = [load_lab(lab_id, root) for lab_id in lab_ids(root)]
    files: dict[str, str] = {"labs/.gitignore": "# generated by hyperlab.docs_hook\n*\n!.gitignore\n",
                             "reference/.gitignore": "# generated by hyperlab.docs_hook\n*\n!.gitignore\n"}
    from hyperlab.diagram import diagram_svg

    for loaded in labs:
        files[f"labs/{loaded.lab.id}.svg"] = diagram_svg(loaded)
        for lang in LANGS:
            files[f"labs/{loaded.lab.id}.{lang}.md"] = lab_page(loaded, lang)
    for lang in LANGS:
        files[f"labs/index.{lang}.md"] = labs_index(labs, lang)
        files[f"reference/cli.{lang}.md"] = cli_reference(lang)
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
    root = find_root(Path(config.config_file_path).parent)
    files = generate(root)
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
