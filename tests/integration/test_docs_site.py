"""The lesson site, built with `mkdocs build --strict` and opened in headless Chromium on localhost.

Needs the docs packages (mkdocs, mkdocs-material, mkdocs-static-i18n) and Debian's chromium and
fonts-nanum (scripts/packages/docs.txt). Chromium runs with every host name resolving to nothing
but 127.0.0.1, so a page that needed the internet would show it here.
"""

from __future__ import annotations

import functools
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[2]
# Kept after the run for a person to look at (outside the checkout; HYPERLAB_ARTIFACTS overrides).
SCREENSHOT = Path(os.environ.get("HYPERLAB_ARTIFACTS", tempfile.gettempdir())) / "hyperlab-docs" / "chapter-2.ko.png"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# What a page fetches by itself: scripts, stylesheets, images, frames, media, preloads, icons.
FETCHED_ATTR = re.compile(
    r"<(?:script|img|iframe|source|video|audio|embed)\b[^>]*\bsrc=[\"']?((?:https?:)?//[^\"' >]+)"
    r"|<link\b(?=[^>]*\brel=[\"']?(?:stylesheet|preload|prefetch|preconnect|dns-prefetch|icon|modulepreload|manifest))"
    r"[^>]*\bhref=[\"']?((?:https?:)?//[^\"' >]+)", re.I)
CSS_URL = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])((?:https?:)?//[^\"')]+)", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                             "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[tuple[str, int]] = []
        log = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                log.append((self.path, int(code) if str(code).isdigit() else 0))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[_Server]:
    srv = _Server(site)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def chromium(tmp_path: Path, *args: str) -> str:
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: bash scripts/setup-host.sh (scripts/packages/docs.txt)"
    result = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def text_of(dom: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", dom))


def steps_in(dom: str) -> list[tuple[str, int]]:
    heads = re.findall(r"<h3\b[^>]*>", dom)
    found = []
    for head in heads:
        step, points = re.search(r'data-step="([^"]+)"', head), re.search(r'data-points="(\d+)"', head)
        if step and points:
            found.append((step.group(1), int(points.group(1))))
    return found


def test_built_site_fetches_nothing_from_the_internet(site: Path) -> None:
    offenders = []
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css"):
            text = path.read_text(encoding="utf-8", errors="replace")
            pattern = CSS_URL if path.suffix == ".css" else FETCHED_ATTR
            for match in pattern.finditer(text):
                offenders.append(f"{path.relative_to(site)}: {next(g for g in match.groups() if g)}")
            if path.suffix == ".html":
                for style in re.findall(r"<style\b[^>]*>(.*?)</style>", text, re.S):
                    offenders += [f"{path.relative_to(site)}: {m.group(1)}" for m in CSS_URL.finditer(style)]
    assert offenders == []
    assert "fonts.googleapis.com" not in (site / "index.html").read_text()


def test_chapter_2_in_chromium(site: Path, server: _Server, tmp_path: Path) -> None:
    from hyperlab.core.load import load_lab

    lab = load_lab("chapter-2", ROOT).lab
    expected = [(s.id, s.points) for s in lab.steps]

    server.requests.clear()
    ko = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", f"{server.url}/labs/chapter-2/")
    en = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", f"{server.url}/en/labs/chapter-2/")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    chromium(tmp_path, "--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={SCREENSHOT}",
             f"{server.url}/labs/chapter-2/")
    assert SCREENSHOT.stat().st_size > 20_000

    # the page as Chromium has it after its scripts ran: Korean and English, same steps, same points
    assert '<html lang="ko"' in ko and '<html lang="en"' in en
    assert html.unescape(lab.title.ko) in html.unescape(ko) and html.unescape(lab.title.en) in html.unescape(en)
    assert steps_in(ko) == expected and steps_in(en) == expected
    ko_text, en_text = text_of(ko), text_of(en)  # highlighted code is split into <span>s
    for step in lab.steps:
        assert f"lab check chapter-2 --step {step.id}" in ko_text and f"lab check chapter-2 --step {step.id}" in en_text
    assert ko.count("admonition success") == len(expected) and "작업 확인" in ko and "Check your work" in en

    # the diagram: inline, its text part of the page, and a link to the full-size file in each language
    for dom, title in ((ko, "chapter-2 토폴로지"), (en, "chapter-2 topology")):
        assert re.search(r'<figure class="hl-diagram" id="diagram">\s*<svg[^>]+class="hl-topo"[^>]+aria-label="' + title, dom)
        assert re.search(r'<a href="\.\./chapter-2\.svg">', dom)
    assert "win2003-1" in ko_text and "NAT 라우터" in ko_text and "NAT router" in en_text
    assert 'aria-label="chapter-2 토폴로지"' in (site / "labs" / "chapter-2.svg").read_text()
    assert 'aria-label="chapter-2 topology"' in (site / "en" / "labs" / "chapter-2.svg").read_text()

    # the language switch: links to the same page in the other language
    assert re.search(r'<a[^>]+href="\.\./\.\./en/labs/chapter-2/"[^>]+hreflang="en"', ko)
    assert re.search(r'<a[^>]+href="\.\./\.\./\.\./labs/chapter-2/"[^>]+hreflang="ko"', en)

    # material's scripts ran (code copy buttons are added by them), all from localhost
    assert "md-code__button" in ko or "md-clipboard" in ko
    paths = [p for p, _ in server.requests]
    assert any(p.startswith("/assets/javascripts/bundle.") for p in paths)
    assert all(code in (200, 304) for p, code in server.requests if not p.endswith("sitemap.xml")), server.requests


def test_korean_text_is_searchable(site: Path) -> None:
    import json

    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert "ko" in index["config"]["lang"]
    ko_page = [d for d in index["docs"] if d["location"].startswith("labs/chapter-2/")]
    assert any("가상 스위치" in d["title"] + d["text"] for d in ko_page)
    assert (site / "assets" / "javascripts" / "lunr" / "min" / "lunr.ko.min.js").is_file()


# ------------------------------------------------------------------------------------ diagrams
# Laid out by Chromium at the site's width (a 1280 px window: the lesson column is 688 px), measured
# by diagram_measure.js: no two pieces of text overlap, none leaves its box or the drawing, no
# drawing is wider than its column, every text is at least 10 px and contrasts 4.5:1 with what is
# behind it. The dark scheme is the one mkdocs-material picks for a reader whose system prefers dark.

MEASURE_JS = Path(__file__).with_name("diagram_measure.js")
ARTIFACTS = SCREENSHOT.parent
SMALLEST_PX = 10


def measured(site: Path, server: _Server, tmp_path: Path, page: str, *flags: str) -> dict[str, object]:
    """The page with diagram_measure.js in it, as Chromium lays it out: the script's report."""
    import json

    (site / "diagram_measure.js").write_text(MEASURE_JS.read_text())
    source = (site / page / "index.html").read_text(encoding="utf-8")
    (site / page / "measure.html").write_text(source.replace("</body>", '<script src="/diagram_measure.js"></script></body>'),
                                              encoding="utf-8")
    dom = chromium(tmp_path, "--window-size=1280,1400", "--virtual-time-budget=5000", *flags, "--dump-dom",
                   f"{server.url}/{page}/measure.html")
    found = re.search(r'<pre id="hl-measure">([^<]*)</pre>', dom)
    assert found, "diagram_measure.js wrote no report"
    report: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return report


def problems_in(report: dict[str, object]) -> list[str]:
    return [f"{d['id']}: {p}" for d in report["diagrams"] for p in d["problems"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize("lab_id", ["chapter-1", "chapter-2", "chapter-2-linux"])
def test_diagrams_read_at_the_sites_width(site: Path, server: _Server, tmp_path: Path, lab_id: str, lang: str) -> None:
    from hyperlab.core.load import load_lab

    loaded = load_lab(lab_id, ROOT)
    report = measured(site, server, tmp_path, f"{'en/' if lang == 'en' else ''}labs/{lab_id}")
    diagrams = report["diagrams"]
    assert report["scheme"] == "default"
    # the lab's diagram, then one per step that names its nodes, each with every node and guest in it
    assert [d["id"] for d in diagrams] == [f"{lab_id}-topology"] + [  # type: ignore[index]
        f"{lab_id}-{s.id}-topology" for s in loaded.lab.steps if s.nodes]
    for d in diagrams:  # type: ignore[attr-defined]
        assert set(loaded.topology.topology.nodes) | set(loaded.lab.guests) <= set(d["texts"]), d["id"]
        assert d["smallest_px"] >= SMALLEST_PX, f"{d['id']}: text {d['smallest_px']:.1f} px at scale {d['scale']:.2f}"
    assert problems_in(report) == []


def _crop(shot: Path, diagram: dict[str, float], out: Path) -> float:
    """The drawing's part of a screenshot (with its heading above it), kept; its mean brightness 0..255."""
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        box = (int(diagram["left"]) - 16, int(diagram["top"]) - 64,
               int(diagram["left"] + diagram["width"]) + 16, int(diagram["top"] + diagram["height"]) + 16)
        part = image.convert("RGB").crop(box)
        part.save(out)
        return float(sum(ImageStat.Stat(part.convert("L")).mean))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_chapter_2_diagram_in_both_languages_and_schemes(site: Path, server: _Server, tmp_path: Path, scheme: str) -> None:
    """The screenshots a person looks at (kept in ARTIFACTS), and the dark scheme measured: the page
    turns slate by itself for a reader whose system prefers dark, and the diagram with it."""
    flags = ("--force-dark-mode",) if scheme == "dark" else ()
    for lang, page in (("ko", "labs/chapter-2"), ("en", "en/labs/chapter-2")):
        report = measured(site, server, tmp_path, page, *flags)
        assert report["scheme"] == ("slate" if scheme == "dark" else "default"), report["scheme"]
        assert problems_in(report) == []
        diagram = report["diagrams"][0]  # type: ignore[index]
        shot = tmp_path / f"{lang}-{scheme}.png"
        height = int(diagram["top"] + diagram["height"]) + 40
        chromium(tmp_path, f"--window-size=1280,{height}", "--hide-scrollbars", "--virtual-time-budget=5000", *flags,
                 f"--screenshot={shot}", f"{server.url}/{page}/measure.html?closed=1")
        kept = ARTIFACTS / f"diagram-chapter-2.{lang}.{scheme}.png"
        brightness = _crop(shot, diagram, kept)
        # light: dark lines on white; dark: light lines on slate (the page's background, rgb(30, 33, 41))
        assert (brightness > 200) if scheme == "light" else (brightness < 70), f"{kept}: mean brightness {brightness:.0f}"
        assert kept.stat().st_size > 40_000, f"{kept} is nearly empty"


def test_the_test_labs_diagram_reads_at_the_sites_width(site: Path, server: _Server, tmp_path: Path) -> None:
    """tests/data/labs/diagram (DHCP, a private switch, a UDP forward, every move), not on the site:
    its diagrams in a column as wide as the site's, measured the same way."""
    from hyperlab.core.load import load_lab
    from hyperlab.host.graphviz import diagram_svg

    loaded = load_lab(ROOT / "tests" / "data" / "labs" / "diagram" / "lab.yaml", ROOT)
    svgs = [diagram_svg(loaded, lang, step) for lang in ("ko", "en") for step in (None, "web")]
    page = site / "diagram-test"
    page.mkdir(exist_ok=True)
    (page / "index.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0">'
        '<div class="md-content__inner md-typeset" style="width:688px;margin:0 auto">'
        + "".join(f"<figure>{svg}</figure>" for svg in svgs) + "</div></body></html>", encoding="utf-8")
    report = measured(site, server, tmp_path, "diagram-test")
    assert len(report["diagrams"]) == 4 and problems_in(report) == []  # type: ignore[arg-type]
    assert all(d["smallest_px"] >= SMALLEST_PX for d in report["diagrams"])  # type: ignore[attr-defined]
