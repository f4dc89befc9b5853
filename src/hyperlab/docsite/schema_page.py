"""The lab, topology and hosts YAML references (`docs/reference/KIND-schema.LANG.md`), from `schema/*.schema.json`."""

from __future__ import annotations

import json
from typing import Any

from hyperlab.docsite.markdown import md


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
    names = {"lab": ("실습 YAML 스키마", "Lab YAML schema"), "topology": ("토폴로지 YAML 스키마", "Topology YAML schema"),
             "hosts": ("호스트 YAML 스키마", "Hosts YAML schema")}
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
