"""Graphviz's `dot`, run on this machine: a lab's diagram as SVG (or PNG).

Why here: drawing the picture (`hyperlab.render.diagram`, DOT text) is pure, but laying it out is
a program run on this host, and render/ may run nothing. host/ is the lowest floor that runs local
programs (accel_probe runs QEMU, hostnet runs ip and nft), and both floors that draw, cli/ (`lab
diagram`) and docsite/ (the lab pages), stand above it. Nothing here needs libvirt.

A missing `dot` is a `HostProblem` with the one command that fixes it; the CLI prints that line
and exits 1, as it does for every other host problem.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal

from hyperlab.core.load import LoadedLab
from hyperlab.host.conn import HostProblem
from hyperlab.render.diagram import diagram_dot, diagram_title
from hyperlab.render.diagram_style import finish_svg

DOT = "dot"
INSTALL = "apt-get install graphviz"
TIMEOUT = 60  # seconds; chapter-2 takes a tenth of one


class DotMissing(HostProblem):
    """Graphviz is not installed."""


PNG_DPI = 144  # a PNG sharp enough for slides; Graphviz's default 96 blurs the thin strokes of arrows


def run_dot(dot_text: str, fmt: Literal["svg", "png"]) -> bytes:
    """`dot -T<fmt>` over the DOT text; its output, or HostProblem with Graphviz's own words."""
    exe = shutil.which(DOT)
    if exe is None:
        raise DotMissing(f"Graphviz's dot is not installed; install it: {INSTALL}")
    args = [exe, f"-T{fmt}"] + ([f"-Gdpi={PNG_DPI}"] if fmt == "png" else [])
    try:
        result = subprocess.run(args, input=dot_text.encode("utf-8"), capture_output=True,
                                timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise HostProblem(f"dot did not finish within {TIMEOUT} s") from None
    if result.returncode != 0:
        said = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise HostProblem(f"dot failed (exit {result.returncode}): {said[-1] if said else 'no message'}")
    return result.stdout


def diagram_svg(loaded: LoadedLab, lang: str = "ko", step: str | None = None) -> str:
    """The lab's diagram as one self-styled `<svg>` element (`hyperlab.render.diagram_style.finish_svg`)."""
    svg = run_dot(diagram_dot(loaded, lang, step), "svg").decode("utf-8")
    return finish_svg(svg, "", diagram_title(loaded.lab.id, lang))


def page_diagrams(loaded: LoadedLab, lang: str, steps: list[str]) -> tuple[str, dict[str, str]]:
    """A lesson page's diagrams in one run of dot (a run costs ~50 ms, mostly starting up; a page
    of chapter-2 has nineteen): the lab's (styled, ids prefixed LAB-), and each of `steps` -> that
    step's highlighted (unstyled: the page's first diagram styles them; ids LAB-STEP-). Graphviz
    lays out each graph of its input on its own and writes one SVG document each."""
    texts = [diagram_dot(loaded, lang)] + [diagram_dot(loaded, lang, step) for step in steps]
    out = run_dot("".join(texts), "svg").decode("utf-8")
    documents = [d for d in out.split("</svg>") if d.strip()]
    if len(documents) != len(texts):
        raise HostProblem(f"dot drew {len(documents)} pictures for {len(texts)} graphs")
    title, lab_id = diagram_title(loaded.lab.id, lang), loaded.lab.id
    main = finish_svg(documents[0] + "</svg>", f"{lab_id}-", title)
    return main, {step: finish_svg(document + "</svg>", f"{lab_id}-{step}-", title, styled=False)
                  for step, document in zip(steps, documents[1:])}


def diagram_png(loaded: LoadedLab, lang: str = "ko", step: str | None = None) -> bytes:
    return run_dot(diagram_dot(loaded, lang, step), "png")
