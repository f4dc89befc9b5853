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

    # the diagram: an <img> of the lab's SVG, fetched from our server, and it is the diagram
    assert re.search(r'<img[^>]+src="\.\./chapter-2\.svg"', ko)
    assert ("/labs/chapter-2.svg", 200) in server.requests
    assert "chapter-2 topology" in (site / "labs" / "chapter-2.svg").read_text()

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
