"""The topology diagram, drawn by the real Graphviz: every fact of a lab's YAML is text in its SVG,
in both languages; the DOT text is deterministic (a golden copy for chapter-2); hostile text comes
out as text; a step's diagram highlights what the step is about; `lab diagram` writes SVG and PNG
and says in one line what is wrong. (Layout in a browser: tests/integration/test_docs_site.py.)

Update the golden DOT after an intended change with HYPERLAB_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from hyperlab.core.load import LoadedLab, load_lab
from hyperlab.host.graphviz import diagram_png, diagram_svg, page_diagrams
from hyperlab.render.diagram import LANGS, diagram_dot, words
from hyperlab.render.diagram_style import PALETTE, h, q
from tests.unit.clihelp import run_lab

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "golden" / "diagram"
SVG = "{http://www.w3.org/2000/svg}"
LABS = [p.parent for p in sorted(ROOT.glob("labs/*/lab.yaml")) + sorted(ROOT.glob("tests/data/labs/*/lab.yaml"))]


def texts(svg: str) -> list[str]:
    """Every piece of text of the SVG, as a browser shows it (whitespace collapsed)."""
    return [" ".join("".join(t.itertext()).split()) for t in ET.fromstring(svg).iter(f"{SVG}text")]


def groups(svg: str) -> dict[str, set[str]]:
    """id -> classes of every element that has an id (nodes, frames, edges)."""
    return {e.get("id", ""): set(e.get("class", "").split()) for e in ET.fromstring(svg).iter() if e.get("id")}


def expected_texts(loaded: LoadedLab, lang: str) -> list[str]:
    """What the YAML says, as the diagram must show it, worked out from the model alone."""
    lab, topo, w = loaded.lab, loaded.topology.topology, words(lang)
    found = [lab.id, *topo.nodes, *topo.networks, *(str(n.cidr) for n in topo.networks.values()), *lab.guests]
    for node in topo.nodes.values():
        for nic in node.nics:
            found.append(nic.network)
            if nic.ip is not None:
                found.append(f"{nic.ip} ({w['student']})" if nic.set_by == "student" else str(nic.ip))
            elif topo.networks[nic.network].dhcp:
                found.append(w["dhcp"])
            else:
                found.append(w["student"] if nic.set_by == "student" else w["no_address"])
    for name, sw in lab.switches.items():
        found += [name, *(part for part in [w["switch_kinds"][sw.kind], str(sw.cidr) if sw.cidr else ""] if part)]
    for guest in lab.guests.values():
        for gnic in guest.nics:
            found.append(gnic.switch)
            uplink = lab.switches[gnic.switch].uplink
            dhcp = uplink is not None and topo.networks[uplink].dhcp
            found.append(str(gnic.ip) if gnic.ip else w["dhcp"] if dhcp else w["no_address"])
    for fwd in lab.forwards:
        ports = f"{fwd.protocol.upper()} {fwd.port}" + (f" → {fwd.to_port}" if fwd.to_port not in (None, fwd.port) else "")
        found.append(ports)
    for move in lab.moves:
        found += [*w["moves"][move.kind], f"{move.guest} → {move.to}" if move.kind != "storage" else move.to]
    return found


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("folder", LABS, ids=lambda p: p.name)
def test_every_fact_of_the_yaml_is_text_in_the_svg(folder: Path, lang: str) -> None:
    loaded = load_lab(folder / "lab.yaml", ROOT)
    svg = diagram_svg(loaded, lang)
    shown = texts(svg)
    joined = "\n".join(shown)
    missing = [fact for fact in expected_texts(loaded, lang) if fact not in shown and fact not in joined]
    assert missing == [], f"not in the {lang} diagram of {folder.name}: {missing}"
    # each address is a piece of text of its own, beside its network or switch
    for name, node in loaded.topology.topology.nodes.items():
        for nic in node.nics:
            if nic.ip is not None and nic.set_by == "lab":
                assert str(nic.ip) in shown, (name, nic.ip)
    for name, guest in loaded.lab.guests.items():
        for gnic in guest.nics:
            assert (str(gnic.ip) if gnic.ip else "") in shown + [""], (name, gnic.ip)
    # forwards: where they arrive, in the box of the machine that serves them
    for fwd in loaded.lab.forwards:
        arrives = [t for t in shown if t.startswith("←") and f"{fwd.protocol.upper()} " in t and t.split()[2].endswith(f":{fwd.port}")]
        assert arrives, f"no '← {fwd.protocol.upper()} ADDRESS:{fwd.port}' row for the forward to {fwd.to}"
    # routers are marked as such
    marks = groups(svg)
    for name in {f.router for f in loaded.lab.forwards} | {n for n, g in loaded.lab.guests.items() if "nat-router" in g.roles}:
        assert "hl-router" in next(c for i, c in marks.items() if i.endswith(f"-{name}") and "node" in c), name


def test_chapter_2_shows_the_seeds_picture() -> None:
    """Seed 004: three hosts outside; inside SVR1 the router with its three legs and the two inner
    servers behind it; the forwards 23 and 35000 through it; Linux01 replicated to SVR1."""
    loaded = load_lab("chapter-2", ROOT)
    dot = diagram_dot(loaded, "en")
    for wire in ('"net-public" -> "n-DC1"', '"net-public" -> "n-SVR1"', '"net-public" -> "n-SVR2"',  # three hosts outside
                 '"n-SVR1" -> "sw-SVR1-External"', '"sw-SVR1-External" -> "g-win2003-1"',  # the router's public leg
                 '"g-win2003-1" -> "sw-SVR1-Internal"', '"g-win2003-1" -> "sw-SVR1-Internal2"',  # and its inner legs
                 '"sw-SVR1-Internal" -> "g-win2003-2"', '"sw-SVR1-Internal2" -> "g-win2003-3"'):
        assert wire + " [" in dot and "hl-wire" in dot.split(wire, 1)[1].split("\n", 1)[0], wire
    assert '"g-win2003-1" -> "g-win2003-2" [id="f0" class="hl-forward"' in dot
    assert '"g-win2003-1" -> "g-win2003-3" [id="f1" class="hl-forward"' in dot
    frame = dot.split('subgraph "cluster_SVR1" {', 1)[1].split("\n}\n", 1)[0]
    assert all(f'"{v}" [' in frame for v in ("g-win2003-1", "g-win2003-2", "g-win2003-3", "sw-SVR1-Internal2"))
    replica = next(line for line in dot.splitlines() if 'class="hl-move hl-move-replica' in line)
    assert "Linux01 → SVR1" in replica and 'cluster_SVR1"' in replica


def test_chapter_2s_forwards_and_replica_agree_with_what_its_checkers_read() -> None:
    """The diagram draws `forwards:` and `moves:`; the checkers read the same facts from variables and
    constants of their own: one must not move without the other."""
    lab = load_lab("chapter-2", ROOT).lab
    replica = next(m for m in lab.moves if m.kind == "replica")
    assert (replica.guest, lab.guests[replica.guest].host, replica.to) == (
        lab.variables["replica_vm"], lab.variables["replica_primary"], lab.variables["replica_server"])
    nat = (ROOT / "checkers" / "chapter-2" / "test_nat.py").read_text()
    constants = {int(m.group(1)) for m in re.finditer(r"^(?:TELNET|RDP)_PORT = (\d+)$", nat, re.M)}
    assert {f.port for f in lab.forwards} == constants == {23, 35000}


@pytest.mark.parametrize("lang", LANGS)
def test_the_dot_text_is_deterministic_and_golden(lang: str) -> None:
    loaded = load_lab("chapter-2", ROOT)
    text = diagram_dot(loaded, lang)
    assert diagram_dot(load_lab("chapter-2", ROOT), lang) == text
    golden = GOLDEN / f"chapter-2.{lang}.dot"
    if os.environ.get("HYPERLAB_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.read_text(encoding="utf-8") == text, f"{golden.name} differs; HYPERLAB_UPDATE_GOLDEN=1 if intended"
    # and the same DOT gives the same SVG bytes from the same Graphviz
    assert diagram_svg(loaded, lang) == diagram_svg(loaded, lang)


def test_hostile_text_comes_out_as_text(tmp_path: Path) -> None:
    """Roles are free text: markup, quotes, DOT's own syntax and escapes must reach the reader as
    written, and the SVG must stay one well-formed element with nothing of theirs in it."""
    hostile = ['<script>alert(1)</script>', 'a & b "c" \'d\'', '"] ; evil [label="x', "\\N \\G \\L", "]]> <!-- x"]
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "t.yaml").write_text(yaml.safe_dump({
        "name": "t", "networks": {"lan": {"cidr": "10.9.0.0/24", "mode": "nat", "host": "10.9.0.1"}},
        "nodes": {"N1": {"image": "debian-12", "roles": hostile, "nics": [{"network": "lan", "ip": "10.9.0.10"}]},
                  "H1": {"image": "debian-12", "nested": True, "nics": [{"network": "lan", "ip": "10.9.0.11"}]}}}))
    (tmp_path / "labs" / "alpha").mkdir(parents=True)
    (tmp_path / "labs" / "alpha" / "lab.yaml").write_text(yaml.safe_dump({
        "id": "alpha", "title": {"ko": "<b>가</b>", "en": "<b>A</b>"}, "topology": "t",
        "guests": {"g1": {"host": "H1", "image": "tiny", "roles": hostile}},
        "steps": [{"id": "one", "title": {"ko": "하나", "en": "One"}, "points": 1, "nodes": ["N1", "g1"]}]}))
    loaded = load_lab("alpha", tmp_path)
    for lang in LANGS:
        for svg in (diagram_svg(loaded, lang), diagram_svg(loaded, lang, "one"), *page_diagrams(loaded, lang, ["one"])[1].values()):
            root = ET.fromstring(svg)  # well-formed
            assert {e.tag for e in root.iter()} <= {f"{SVG}{t}" for t in ("svg", "style", "g", "text", "polygon", "path", "ellipse", "polyline")}
            assert ", ".join(hostile) in texts(svg)  # the node's and the guest's roles, exactly as written
            assert texts(svg).count(", ".join(hostile)) == 2
    assert q('a"b\\c') == '"a\\"b\\\\c"' and h('<a href="x">&\n\\N') == "&lt;a href=&quot;x&quot;&gt;&amp; \\\\N"


def test_a_steps_diagram_highlights_what_the_step_is_about() -> None:
    loaded = load_lab("chapter-2", ROOT)
    on = lambda svg: {i.removeprefix("chapter-2-") for i, c in groups(svg).items() if "hl-on" in c}  # noqa: E731
    assert on(diagram_svg(loaded, "en")) == set()
    # shared-nothing (nodes win2003-1, SVR1, SVR2): the guest, both hosts and their frames, the switches the guest uses, the move
    assert on(diagram_svg(loaded, "en", "shared-nothing")) == {
        "g-win2003-1", "c-SVR1", "c-SVR2", "n-SVR1", "n-SVR2", "sw-SVR1-External", "sw-SVR1-Internal", "sw-SVR1-Internal2", "m0"}
    assert on(diagram_svg(loaded, "en", "port-forwards")) == {
        "g-win2003-1", "sw-SVR1-External", "sw-SVR1-Internal", "sw-SVR1-Internal2", "f0", "f1"}
    # the page's step diagrams are the same pictures, their ids apart from the lab's own
    main, steps = page_diagrams(loaded, "en", ["shared-nothing"])
    assert on(steps["shared-nothing"]) == {f"shared-nothing-{i}" for i in on(diagram_svg(loaded, "en", "shared-nothing"))}
    ids = [i for svg in (main, *steps.values()) for i in groups(svg)]
    assert len(ids) == len(set(ids)) and all(i.startswith("chapter-2-") for i in ids)
    assert "<style>" in main and "<style>" not in steps["shared-nothing"]
    assert '<g id="chapter-2-topology" class="graph"' in main
    assert '<g id="chapter-2-shared-nothing-topology" class="graph"' in steps["shared-nothing"]


def test_the_words_exist_in_both_languages() -> None:
    data = yaml.safe_load((ROOT / "src" / "hyperlab" / "render" / "words" / "diagram.yaml").read_text(encoding="utf-8"))
    def shape(value: object) -> object:
        return {k: shape(v) for k, v in value.items()} if isinstance(value, dict) else type(value).__name__
    assert set(data) == set(LANGS) and shape(data["ko"]) == shape(data["en"])
    assert [len(data["ko"]["moves"][k]) > 0 for k in data["ko"]["moves"]] and data["ko"]["title"] != data["en"]["title"]


def test_the_palette_has_one_name_per_colour() -> None:
    """The SVG's style finds each colour by its value: two names for one value would be one colour in the dark."""
    light = [light for light, _ in PALETTE.values()]
    assert len(light) == len(set(light)) and all(len(v) == 7 and v.startswith("#") for pair in PALETTE.values() for v in pair)


# ------------------------------------------------------------------------------ lab diagram


@pytest.fixture
def in_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_lab_diagram_writes_svg_and_png(tmp_path: Path, in_checkout: None) -> None:
    svg, png = tmp_path / "c2.svg", tmp_path / "c2.png"
    result = run_lab("diagram", "chapter-2", "--lang", "en", "-o", str(svg))
    assert result.exit_code == 0 and result.stderr == f"wrote {svg}\n", result.stderr
    assert "win2003-1" in texts(svg.read_text()) and "NAT router" in texts(svg.read_text())
    assert run_lab("diagram", "chapter-2", "--lang", "en").stdout == svg.read_text()
    assert run_lab("diagram", "chapter-2", "-o", str(png), "--step", "replication").exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    assert png.read_bytes() == diagram_png(load_lab("chapter-2", ROOT), "ko", "replication")


def test_lab_diagram_without_graphviz_says_how_to_install_it(tmp_path: Path, in_checkout: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    out = tmp_path / "x.svg"
    result = run_lab("diagram", "chapter-2", "-o", str(out))
    assert result.exit_code == 1, result.stderr
    assert result.stderr == "error: Graphviz's dot is not installed; install it: apt-get install graphviz\n"
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["-o", "x.pdf"], "error: --output x.pdf: give a .svg or .png file"),
    (["--lang", "fr"], "error: --lang fr: use one of ko, en"),
    (["--step", "nope"], "error: --step nope: chapter-2 has no such step; steps: switches, domain-join, smb-share, guests, "
                         "nat-addressing, rras-nat, telnet, rdp-35000, port-forwards, live-migration-settings, shared-nothing, "
                         "delegation, smb-permissions, smb-migration, storage-migration, replica-server, replication, "
                         "planned-failover"),
])
def test_lab_diagram_refuses_in_one_line(args: list[str], message: str, in_checkout: None) -> None:
    result = run_lab("diagram", "chapter-2", *args)
    assert result.exit_code == 2 and result.stderr == message + "\n" and result.stdout == ""
