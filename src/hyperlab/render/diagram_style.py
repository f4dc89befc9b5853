"""The look of the topology diagram, and the SVG Graphviz draws made fit for a page. Pure text.

Colours: the DOT text carries the light scheme's colours as plain attributes (so `dot -Tpng` draws
a finished picture), every one of them from `PALETTE`. The SVG gets a `<style>` that maps each of
those exact values to a CSS variable with a light and a dark value: dark when the page's
mkdocs-material scheme is `slate`, or, for a file opened on its own, when the reader's system
prefers dark. On the page the background is the page's own.

`finish_svg` turns Graphviz's SVG document into one `<svg>` element: no XML prolog, DOCTYPE or
comments (so it can sit inline in HTML, where its text is selectable and found by the browser's
search), sizes in CSS pixels, the style, and every `id` prefixed so that several diagrams can
share a page.
"""

from __future__ import annotations

import html
import re

# name: (light, dark). Every colour the DOT text uses is one of these light values, and no two
# names share one (the SVG's style finds each by its value).
PALETTE: dict[str, tuple[str, str]] = {
    "bg": ("#fffffe", "#0d1117"),  # a file's background; on a page: the page's
    "fg": ("#1f2328", "#e6edf3"),
    "muted": ("#57606a", "#a5afba"),
    "line": ("#6e7781", "#8b949e"),
    "box": ("#ffffff", "#171a21"),
    "head": ("#eef1f5", "#2b3242"),
    "host": ("#f6f8fa", "#272b38"),
    "host_line": ("#8c959f", "#6e7681"),
    "nat": ("#1565c0", "#79b8ff"),
    "isolated": ("#7b1fa2", "#d2a8ff"),
    "route": ("#276b2b", "#7ee787"),
    "bridge": ("#bf360c", "#ffa657"),
    "external": ("#00707a", "#56d4dd"),
    "internal": ("#4527a0", "#b4a7ff"),
    "private": ("#616161", "#c0c0c0"),
    "router": ("#e65100", "#ffb86c"),
    "router_fill": ("#fff3e0", "#3a2a17"),
    "forward": ("#b33a0b", "#ff9e64"),
    "move": ("#37474f", "#b0bec5"),
    "replica": ("#1b5e20", "#8ddb8c"),
    "on": ("#c2185b", "#ff7eb6"),
    "on_fill": ("#fde7ef", "#3d1f2c"),
}
C = {name: light for name, (light, _) in PALETTE.items()}
# Graphviz measures the text in FONT (Debian's fonts-nanum, which the docs already need); the
# browser draws it in the first of FONTS it has, so the boxes fit where NanumGothic is.
FONT = "NanumGothic"
FONTS = "NanumGothic,Noto Sans CJK KR,Noto Sans KR,Malgun Gothic,Apple SD Gothic Neo,sans-serif"

_VIEWBOX = re.compile(r'<svg\b[^>]*\bviewBox="([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9.]+)"[^>]*>')
_ID = re.compile(r'\bid="([^"]*)"')
_GRAPH_ID = re.compile(r'(<g )id="(?:page[0-9,]+_)?([^"]*)"(?= class="graph")')
_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)
_TITLE = re.compile(r"<title>[^<]*</title>\n?")  # Graphviz's tooltips: the DOT ids, no help to a reader


def q(text: str) -> str:
    """A DOT quoted string (ids, attribute values)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def h(text: str) -> str:
    """Text inside a Graphviz HTML-like label: markup characters escaped, line breaks as spaces, and
    backslashes doubled: Graphviz expands \\N, \\G and the like even there (and after decoding
    entities, so &#92;N would not do); \\\\ is a backslash."""
    return html.escape(" ".join(str(text).split()).replace("\\", "\\\\"), quote=True)


def style_css() -> str:
    """The `<style>` text of every diagram: one variable per palette colour, light and dark, and a
    halo behind the labels of arrows and frames (in the frame's colour) so that lines never run
    through their letters."""
    light = ";".join(f"--hl-{name}:{lt}" for name, (lt, _) in PALETTE.items())
    dark = ";".join(f"--hl-{name}:{dk}" for name, (_, dk) in PALETTE.items())
    rules = [f"svg.hl-topo{{{light};max-width:100%;height:auto}}",
             f'[data-md-color-scheme="slate"] svg.hl-topo{{{dark}}}',
             f"@media (prefers-color-scheme:dark){{svg.hl-topo:root{{{dark}}}}}",
             ".md-typeset svg.hl-topo{--hl-bg:transparent}",
             f"svg.hl-topo text{{font-family:{FONTS}}}",
             "svg.hl-topo g.edge text,svg.hl-topo g.cluster text{paint-order:stroke;stroke:var(--hl-host);"
             "stroke-width:3px;stroke-linejoin:round}"]
    for name, (value, _) in PALETTE.items():
        rules.append(f'svg.hl-topo [fill="{value}"]{{fill:var(--hl-{name})}}'
                     f'svg.hl-topo [stroke="{value}"]{{stroke:var(--hl-{name})}}')
    return "".join(rules)


def finish_svg(svg: str, prefix: str, label: str, styled: bool = True) -> str:
    """Graphviz's SVG document -> one self-styled `<svg>` element (see the module's docstring).
    `prefix` is put before every id; `label` is the picture's accessible name. Without `styled`
    it has no `<style>` of its own: for a page that holds a styled diagram already (a `<style>`
    anywhere applies to the whole page)."""
    opening = _VIEWBOX.search(svg)
    if opening is None or "</svg>" not in svg:
        raise ValueError("not an SVG document from Graphviz (no <svg> with a viewBox)")
    x, y, width, height = opening.groups()
    # one CSS pixel per unit of the drawing: Graphviz's font sizes are then pixels
    tag = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{round(float(width))}" height="{round(float(height))}" '
           f'viewBox="{x} {y} {width} {height}" class="hl-topo" role="img" aria-label="{h(label)}">')
    body = _TITLE.sub("", _COMMENT.sub("", svg[opening.end():svg.rindex("</svg>")]))
    # (Graphviz names the graph of the second and later graphs of one input page0,1_ID: not ours)
    body = _GRAPH_ID.sub(r'\1id="\2"', body, count=1)
    body = _ID.sub(lambda m: f'id="{h(prefix)}{m.group(1)}"', body)
    style = f"<style>{style_css()}</style>" if styled else ""
    return f"{tag}\n{style}{body.strip()}\n</svg>\n"
