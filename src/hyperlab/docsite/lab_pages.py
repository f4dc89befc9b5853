"""The lab pages: one per lab and language (`docs/labs/LAB.LANG.md`), and the labs' index.

Title, summary, topology diagram and table, nested guests, the start state, then the steps with
points, requires, the step's diagram (what it is about, highlighted), the step's lesson
(`labs/LAB/lessons/STEP.LANG.md`), its hint and a "check your work" box. The lesson files are
validated with the lab (`hyperlab.core.validate`).

The diagrams are inline `<svg>` elements (`hyperlab.host.graphviz` draws them; the hook passes
them in, so that this module stays pure): their text is selectable and found by the browser's
search, and they take the page's light or dark scheme. The site's search indexes the topology
diagram, not the step diagrams, which repeat it.
"""

from __future__ import annotations

import re
from pathlib import Path

from hyperlab.core.load import LoadedLab
from hyperlab.core.model import Text
from hyperlab.core.units import format_size
from hyperlab.core.wiring import Port, ports
from hyperlab.docsite.markdown import md
from hyperlab.docsite.words import words


TOPOLOGY = ""  # the key of the lab's own diagram in `lab_page`'s diagrams (step ids are never empty)


def t(text: Text, lang: str) -> str:
    return getattr(text, lang)


def check_command(lab_id: str, step_id: str) -> str:
    return f"lab check {lab_id} --step {step_id}"


def step_anchor(step_id: str) -> str:
    return f"step-{step_id}"


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


def diagram_file(lab_id: str, lang: str) -> str:
    """The full-size SVG beside the pages: mkdocs-static-i18n serves `LAB.LANG.svg` as `LAB.svg`
    in that language's site, beside that language's page."""
    return f"labs/{lab_id}.{lang}.svg"


def address(port: Port | None, w: dict[str, str]) -> str:
    """A NIC's address for the tables; one the lab does not give says why, as the diagram does."""
    if port is not None and port.ip is not None:
        return str(port.ip) + (f" ({w['student_ip']})" if port.set_by == "student" else "")
    if port is not None and port.dhcp:
        return w["dhcp"]
    return w["student_ip"] if port is not None and port.set_by == "student" else w["no_address"]


def _by_index(found: list[Port], count: int) -> list[Port | None]:
    """Ports by NIC position (a NIC on an unknown network has none; validation refuses those)."""
    at = {p.index: p for p in found}
    return [at.get(i) for i in range(count)]


def lab_page(loaded: LoadedLab, lang: str, lessons: dict[str, str] | None = None,
             diagrams: dict[str, str] | None = None) -> str:
    """One lab's lesson page in one language; `lessons` as `read_lessons` gives them for that language;
    `diagrams`: TOPOLOGY (the lab's diagram) and step ids -> an `<svg>` element in that language."""
    lab, topo = loaded.lab, loaded.topology.topology
    lessons = lessons or {}
    diagrams = diagrams or {}
    wired = ports(lab, topo)
    w = words("lab_pages")[lang]
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
    if TOPOLOGY in diagrams:
        out += ['<figure class="hl-diagram" id="diagram">', diagrams[TOPOLOGY].strip(),
                f'<figcaption><a href="../{lab.id}.svg">{w["full_size"]}</a></figcaption>', "</figure>", ""]
    out += [f"| {w['node']} | {w['image']} | {w['resources']} | {w['addresses']} |", "| --- | --- | --- | --- |"]
    for name, node in topo.nodes.items():
        addresses = ", ".join(f"{nic.network} {address(port, w)}"
                              for nic, port in zip(node.nics, _by_index(wired[name], len(node.nics)))) or "-"
        resources = f"{node.vcpus} vCPU, {format_size(node.memory)}" + (", nested" if node.nested else "")
        out.append(f"| {md(name)} | `{node.image}` | {resources} | {md(addresses)} |")
    out.append("")
    if lab.guests:
        out += [f"**{w['guests']}**", "", f"| {w['guest']} | {w['host']} | {w['addresses']} |", "| --- | --- | --- |"]
        for name, guest in lab.guests.items():
            addresses = ", ".join(f"{nic.switch} {nic.ip if nic.ip else address(port, w)}"
                                  for nic, port in zip(guest.nics, _by_index(wired[name], len(guest.nics)))) or "-"
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
        if step.id in diagrams:
            out += [f'<details class="abstract hl-step-diagram" data-search-exclude><summary>{w["step_diagram"]}</summary>',
                    diagrams[step.id].strip(), "</details>", ""]
        if lessons.get(step.id):
            out += [*lesson_lines(lessons[step.id], 3), ""]
        if step.hint:
            out += [f"??? tip \"{w['hint']}\"", "", f"    {md(t(step.hint, lang))}", ""]
        out += [f"!!! success \"{w['check']}\"", "", f"    {w['check_body']}", "",
                "    ```sh", f"    {check_command(lab.id, step.id)}", "    ```", ""]
    return "\n".join(out)


def labs_index(labs: list[LoadedLab], lang: str) -> str:
    w = words("lab_pages")[lang]
    out = [f"# {w['labs_title']}", "", w["labs_intro"], "",
           f"| {w['lab']} | {w['title']} | {w['steps']} | {w['points']} |", "| --- | --- | ---: | ---: |"]
    for loaded in labs:
        lab = loaded.lab
        out.append(f"| `{lab.id}` | [{md(t(lab.title, lang))}]({lab.id}.md) | {len(lab.steps)} | "
                   f"{sum(s.points for s in lab.steps)} |")
    return "\n".join(out) + "\n"
