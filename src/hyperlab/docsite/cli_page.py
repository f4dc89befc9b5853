"""The command-line reference (`docs/reference/cli.LANG.md`), read from the typer app itself."""

from __future__ import annotations

import re
import typing
from typing import Any

import typer

from hyperlab.cli.main import app
from hyperlab.docsite.markdown import md


def _param_kind(p: Any) -> str:
    """The value's type as a reader wants it: text, integer, number, path, flag, list of ..."""
    if getattr(p, "is_flag", False):
        return "flag"
    annotation = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    if annotation is None:
        return str(getattr(getattr(p, "type", None), "name", "text")).lower()
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
