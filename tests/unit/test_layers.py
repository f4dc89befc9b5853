"""Prepared labs without libvirt: inputs and staleness (core.layers), the layer store on real qcow2
files (images.layers), which labs can be prepared (ops.prepare.refusal) and the plan on layers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from hyperlab.core.layers import LayerRecord, differences, make_inputs, secrets_used
from hyperlab.core.load import load_lab
from hyperlab.core.plan import HostFacts, plan
from hyperlab.images.layers import LayerInUse, LayerStore, qcow2_backing
from hyperlab.images.store import ImageStore
from hyperlab.ops.prepare import images_of, on_layers, refusal

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"debian-12": "a" * 64, "ticker": "b" * 64}


def inputs(**changes: object):  # type: ignore[no-untyped-def]
    base: dict = {"version": "0.1.0", "topology_hash": "t1", "images": dict(IMAGES),
                  "scripts": {"start/dc.sh": b"provision\n"}, "variables": {"interval": 300, "fast": False}}
    base.update(changes)
    return make_inputs(base["version"], base["topology_hash"], base["images"], base["scripts"], base["variables"])


def test_same_inputs_same_hash_and_every_input_counts() -> None:
    assert inputs().digest() == inputs().digest()
    assert len(inputs().digest()) == 16
    changed = [inputs(version="0.2.0"), inputs(topology_hash="t2"), inputs(images={**IMAGES, "ticker": "c" * 64}),
               inputs(scripts={"start/dc.sh": b"provision --other\n"}), inputs(variables={"interval": 60, "fast": False})]
    assert len({c.digest() for c in changed} | {inputs().digest()}) == len(changed) + 1


def test_differences_say_what_changed() -> None:
    built = inputs()
    assert differences(built, built) == []
    wanted = inputs(images={"debian-12": "c" * 64}, scripts={"start/dc.sh": b"x", "start/new.sh": b"y"},
                    variables={"interval": 60, "fast": False})
    assert differences(built, wanted) == ["image debian-12 changed", "image ticker is no longer used",
                                          "script start/dc.sh changed", "script start/new.sh is new",
                                          "variable interval: 300 -> 60"]


def test_secrets_used_finds_whole_names_only() -> None:
    scripts = {"a.sh": b"cat /etc/hyperlab/secrets/domain-admin", "b.ps1": b"Get-Content C:\\hyperlab\\secrets\\dsrm",
               "c.sh": b"echo domain-administrators dsrmx", "d.sh": b"nothing"}
    assert secrets_used(scripts) == {"a.sh": ["domain-admin"], "b.ps1": ["dsrm"]}


def facts(tmp_path: Path) -> HostFacts:
    return HostFacts(accel="tcg", images_dir=tmp_path / "images", instances_dir=tmp_path / "instances")


def test_which_labs_can_be_prepared(tmp_path: Path) -> None:
    for lab in ("chapter-1", "chapter-2-linux"):
        loaded = load_lab(f"labs/{lab}/lab.yaml", ROOT)
        assert refusal(loaded, plan(loaded, "x", facts(tmp_path))) is None
    windows = load_lab("labs/chapter-2/lab.yaml", ROOT)
    assert "DC1 is a Windows node" in (refusal(windows, plan(windows, "x", facts(tmp_path))) or "")
    # chapter-2-linux's start state provisions Samba with the instance's password: without its
    # personalize actions, the template's password would be every instance's
    linux = load_lab("labs/chapter-2-linux/lab.yaml", ROOT)
    bare = dataclasses.replace(linux, lab=linux.lab.model_copy(update={"personalize": []}))
    why = refusal(bare, plan(bare, "x", facts(tmp_path))) or ""
    assert why.startswith("start/dc.sh uses domain-admin:") and "personalize:" in why


def test_plan_on_layers_backs_every_volume_by_its_layer(tmp_path: Path) -> None:
    loaded = load_lab("labs/chapter-2-linux/lab.yaml", ROOT)
    cold = plan(loaded, "x", facts(tmp_path))
    store = LayerStore(ImageStore(tmp_path / "images"), tmp_path / "instances")
    folder = store.folder("chapter-2-linux", "0" * 16)
    record = LayerRecord(lab="chapter-2-linux", inputs=inputs(), inputs_hash="0" * 16, created="2026-12-03T00:00:00Z",
                         volumes=[{"node": n.name, "name": v.name, "bytes": 0, "backing": None}
                                  for n in cold.nodes for v in n.volumes])
    from hyperlab.images.layers import LayerSet
    warm = on_layers(cold, LayerSet(folder, record))
    pairs = [(v.name, v.backing) for n in warm.nodes for v in n.volumes]
    assert pairs and all(backing == folder / name for name, backing in pairs)
    # nothing else of the plan changes: the domains are the same on either path
    assert [n.model_copy(update={"volumes": []}) for n in warm.nodes] == [n.model_copy(update={"volumes": []}) for n in cold.nodes]


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def test_layer_store_saves_read_only_finds_and_never_removes_a_used_set(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    qemu_img("create", "-q", "-f", "qcow2", str(images / "debian-12.qcow2"), "64M")
    template = tmp_path / "instances" / "lab.template"
    template.mkdir(parents=True)
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(images / "debian-12.qcow2"), "-F", "qcow2", str(template / "N1.qcow2"))
    qemu_img("create", "-q", "-f", "qcow2", str(template / "N1.disk1.qcow2"), "16M")
    store = LayerStore(ImageStore(images), tmp_path / "instances")
    made = store.save("lab", inputs(), [("N1", template / "N1.qcow2", "debian-12.qcow2"),
                                        ("N1", template / "N1.disk1.qcow2", None)])
    assert not (template / "N1.qcow2").exists()  # moved, not copied
    for name in ("N1.qcow2", "N1.disk1.qcow2"):
        assert made.path(name).stat().st_mode & 0o777 == 0o444
    assert qcow2_backing(made.path("N1.qcow2")) == str(images / "debian-12.qcow2")
    assert qcow2_backing(made.path("N1.disk1.qcow2")) is None
    assert store.find("lab", inputs().digest()) == made
    assert store.find("lab", inputs(topology_hash="t2").digest()) is None
    assert json.loads((made.folder / "layer.json").read_text())["inputs_hash"] == inputs().digest()

    # an instance's overlay on the layer makes the set used: neither pruned nor rewritten
    student = tmp_path / "instances" / "lab.kim"
    student.mkdir()
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(made.path("N1.qcow2")), "-F", "qcow2", str(student / "N1.qcow2"))
    assert store.users(made.folder) == ["lab.kim"]
    assert store.prune("lab") == []
    again = tmp_path / "instances" / "lab.template" / "N1.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(again), "16M")
    with pytest.raises(LayerInUse, match="in use by lab.kim"):
        store.save("lab", inputs(), [("N1", again, None)])
    assert made.complete()

    # unused: a newer set of the lab replaces it, an unfinished folder goes too
    (student / "N1.qcow2").unlink()
    (store.root / "lab" / ("f" * 16)).mkdir()
    newer = store.save("lab", inputs(topology_hash="t2"), [("N1", again, None)])
    removed = store.prune("lab", keep=newer.record.inputs_hash)
    assert sorted(p.name for p in removed) == sorted([inputs().digest(), "f" * 16])
    assert [s.folder for s in store.sets()] == [newer.folder]


def test_a_record_that_lies_about_its_folder_is_not_believed(tmp_path: Path) -> None:
    images = tmp_path / "images"
    store = LayerStore(ImageStore(images), tmp_path / "instances")
    folder = store.folder("lab", "1" * 16)
    folder.mkdir(parents=True)
    record = LayerRecord(lab="other", inputs=inputs(), inputs_hash="1" * 16, created="2026-12-03T00:00:00Z",
                         volumes=[{"node": "N1", "name": "N1.qcow2", "bytes": 0, "backing": None}])
    (folder / "layer.json").write_text(record.model_dump_json())
    assert store.sets() == [] and store.find("lab", "1" * 16) is None
    (folder / "layer.json").write_text("{not json")
    assert store.sets() == [] and store.unfinished("lab") == [folder]
    with pytest.raises(ValueError):
        LayerRecord(lab="lab", inputs=inputs(), inputs_hash="1" * 16, created="2026-12-03T00:00:00Z",
                    volumes=[{"node": "N1", "name": "../../etc/passwd", "bytes": 0, "backing": None}])


def test_an_instance_is_made_of_its_nodes_images_and_its_nested_guests_images(tmp_path: Path) -> None:
    """What `lab up` and `lab prepare` build or find before they choose cold or prepared: the layers'
    inputs name every one of these (a fresh host has none of the nested guests' images yet)."""
    facts = HostFacts(images_dir=tmp_path, instances_dir=tmp_path / "i")
    for lab, images in (("chapter-1", {"debian-12", "tiny"}), ("chapter-2-linux", {"debian-12", "ticker"})):
        loaded = load_lab(lab, ROOT)
        assert images_of(loaded, plan(loaded, "x", facts)) == images
