"""Visual Genome reader on the real v1.2 and v1.0 samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scalar.data.readers.common import strict_rows
from scalar.data.readers.vg import read_visual_genome
from scalar.data.scene import AnnotationError
from tests.paths import REALDATA

VG = REALDATA / "visual_genome"
FILES = ("objects", "attributes", "relationships", "region_descriptions")


def _load(folder: Path) -> dict[str, list]:
    out = {f: json.loads((folder / f"{f}.json").read_text()) for f in FILES}
    if (folder / "image_data.json").is_file():
        out["image_data"] = json.loads((folder / "image_data.json").read_text())
    return out


def _image_id(entry: dict):
    return entry["image_id"] if "image_id" in entry else entry["id"]


def _oid(row: dict):
    return row["object_id"] if "object_id" in row else row["id"]


@pytest.fixture()
def v10(tmp_path: Path) -> Path:
    root = tmp_path / "v1.0"
    shutil.copytree(VG / "v1.0", root)
    shutil.copy(VG / "v1.2" / "image_data.json", root / "image_data.json")
    return root


def test_sample_totals_v12():
    raw = _load(VG / "v1.2")
    corpus = read_visual_genome(VG / "v1.2", check_images=False)
    counts = corpus.counts()
    assert counts["images"] == len(raw["image_data"]) == 5
    assert counts["objects"] == sum(len(e["objects"]) for e in raw["objects"]) == 177
    assert counts["relations"] == sum(len(e["relationships"]) for e in raw["relationships"]) == 158
    assert counts["regions"] == sum(len(e["regions"]) for e in raw["region_descriptions"]) == 1278
    with_attrs = sum(1 for s in corpus.scenes for o in s.objects if o.attributes)
    assert with_attrs == sum(
        1 for e in raw["attributes"] for a in e["attributes"] if a.get("attributes")
    )
    assert with_attrs == 110


@pytest.mark.parametrize("version", ["v1.2", "v1.0"])
def test_per_image_values_equal_raw(version, v10):
    folder = VG / "v1.2" if version == "v1.2" else v10
    raw = _load(folder)
    corpus = read_visual_genome(folder, check_images=False)
    sizes = {e["image_id"]: (e["width"], e["height"]) for e in raw["image_data"]}
    assert [s.image.id for s in corpus.scenes] == sorted(sizes)
    scenes = {s.image.id: s for s in corpus.scenes}
    clipped = 0
    for entry in raw["relationships"]:
        scene = scenes[_image_id(entry)]
        assert len(scene.relations) == len(entry["relationships"])
        objs = scene.object_by_id()
        for rel, row in zip(scene.relations, entry["relationships"]):
            assert (rel.subject, rel.object) == (_oid(row["subject"]), _oid(row["object"]))
            assert rel.subject in objs and rel.object in objs
            assert rel.predicate == row["predicate"].strip().lower()
    for entry in raw["region_descriptions"]:
        scene = scenes[_image_id(entry)]
        assert len(scene.regions) == len(entry["regions"])
        for reg, row in zip(scene.regions, entry["regions"]):
            x, y, w, h = row["x"], row["y"], row["width"], row["height"]
            assert reg.text == row["phrase"].strip()
            if reg.box != (x, y, x + w, y + h):
                W, H = sizes[_image_id(entry)]
                assert reg.box == (max(x, 0), max(y, 0), min(x + w, W), min(y + h, H))
                clipped += 1
    for entry in raw["objects"]:
        scene = scenes[_image_id(entry)]
        objs = scene.object_by_id()
        W, H = sizes[_image_id(entry)]
        for row in entry["objects"]:
            o = objs[_oid(row)]
            x, y, w, h = row["x"], row["y"], row["w"], row["h"]
            assert o.category == row["names"][0].strip().lower()
            assert o.synset == (row["synsets"][0] if row.get("synsets") else None)
            if o.box != (x, y, x + w, y + h):
                assert o.box == (max(x, 0), max(y, 0), min(x + w, W), min(y + h, H))
                clipped += 1
    assert corpus.skips.counts.get("box_clipped", 0) >= clipped


def test_attributes_merge_v12():
    raw = _load(VG / "v1.2")
    corpus = read_visual_genome(VG / "v1.2", check_images=False)
    objs = {o.id: o for s in corpus.scenes for o in s.objects}
    first = raw["attributes"][0]["attributes"][0]
    assert first["object_id"] == 1058498 and first["attributes"] == ["green", "tall"]
    assert objs[1058498].attributes == ["green", "tall"]
    assert objs[1058498].category == "clock"
    for entry in raw["attributes"]:
        for row in entry["attributes"]:
            want = list(
                dict.fromkeys(a.strip().lower() for a in row.get("attributes") or [] if a.strip())
            )
            assert objs[row["object_id"]].attributes == want


def test_v10_adds_objects_from_attributes_and_endpoints(v10):
    raw = _load(v10)
    corpus = read_visual_genome(v10, check_images=False)
    assert not corpus.skips, corpus.skips.report()
    for entry in raw["objects"]:
        iid = _image_id(entry)
        scene = next(s for s in corpus.scenes if s.image.id == iid)
        ids = {r["id"] for r in entry["objects"]}
        attrs = next(e for e in raw["attributes"] if e["id"] == iid)["attributes"]
        rels = next(e for e in raw["relationships"] if e["id"] == iid)["relationships"]
        ids |= {a["id"] for a in attrs}
        ids |= {r[k]["id"] for r in rels for k in ("subject", "object")}
        assert set(scene.object_by_id()) == ids
        objs = scene.object_by_id()
        for a in attrs:  # attributes of objects not in objects.json still arrive
            want = list(dict.fromkeys(x.strip().lower() for x in a["attributes"] if x.strip()))
            assert objs[a["id"]].attributes == want
            assert objs[a["id"]].category == a["object_names"][0].strip().lower()


def test_image_paths_and_missing_images(tmp_path):
    root = tmp_path / "vg"
    shutil.copytree(VG / "v1.2", root)
    corpus = read_visual_genome(root, check_images=False)
    paths = {s.image.id: Path(s.image.path) for s in corpus.scenes}
    assert paths[1] == root / "VG_100K_2" / "1.jpg"
    assert paths[2] == root / "VG_100K" / "2.jpg"
    for iid in (1, 3):  # two images on disk, three missing
        paths[iid].parent.mkdir(exist_ok=True)
        paths[iid].write_bytes(b"never decoded by the reader")
    corpus = read_visual_genome(root, check_images=True)
    assert [s.image.id for s in corpus.scenes] == [1, 3]
    assert corpus.skips.as_dict() == {"missing_image": 3}
    # without urls the reader looks in VG_100K then VG_100K_2
    data = json.loads((root / "image_data.json").read_text())
    for row in data:
        del row["url"]
    (root / "image_data.json").write_text(json.dumps(data))
    corpus = read_visual_genome(root, image_dir=root, check_images=True)
    assert {s.image.id: Path(s.image.path) for s in corpus.scenes} == {
        1: root / "VG_100K_2" / "1.jpg",
        3: root / "VG_100K" / "3.jpg",
    }


def test_missing_image_data(tmp_path):
    root = tmp_path / "v1.0"
    shutil.copytree(VG / "v1.0", root)
    with pytest.raises(FileNotFoundError, match="image_data.json is needed for image sizes"):
        read_visual_genome(root, check_images=False)
    corpus = read_visual_genome(root, check_images=False, require_image_data=False)
    assert [s.image.id for s in corpus.scenes] == [1, 2, 3, 4, 5]
    assert all((s.image.width, s.image.height) == (0, 0) for s in corpus.scenes)
    raw = _load(root)
    assert corpus.counts()["regions"] == sum(len(e["regions"]) for e in raw["region_descriptions"])


def test_bad_rows_are_counted_or_named(tmp_path):
    root = tmp_path / "vg"
    shutil.copytree(VG / "v1.2", root)
    objects = json.loads((root / "objects.json").read_text())
    objs = objects[0]["objects"]
    objs[0]["w"] = 0  # degenerate
    objs[1]["x"] = 790  # image 1 is 800 wide: clipped
    objs.append({**objs[2], "x": objs[2]["x"] + 5})  # same id, other box
    objects.append({"image_id": 999, "objects": []})
    (root / "objects.json").write_text(json.dumps(objects))
    regions = json.loads((root / "region_descriptions.json").read_text())
    regions[1]["regions"][0]["phrase"] = "  "
    (root / "region_descriptions.json").write_text(json.dumps(regions))

    corpus = read_visual_genome(root, check_images=False)
    skips = corpus.skips.as_dict()
    assert skips["degenerate_box"] == 1 and skips["duplicate_object_id"] == 1
    assert skips["unknown_image"] == 1 and skips["empty_region_phrase"] == 1
    assert skips["box_clipped"] >= 1
    scene1 = corpus.scenes[0].object_by_id()
    assert objs[0]["object_id"] not in scene1
    assert scene1[objs[1]["object_id"]].box[2] == 800.0
    rels = json.loads((root / "relationships.json").read_text())[0]["relationships"]
    dropped = sum(
        1 for r in rels if objs[0]["object_id"] in (_oid(r["subject"]), _oid(r["object"]))
    )
    assert skips.get("relation_endpoint_dropped", 0) == dropped
    assert len(corpus.scenes[0].relations) == len(rels) - dropped

    objects[0]["objects"][3]["x"] = "12"
    (root / "objects.json").write_text(json.dumps(objects))
    with strict_rows():  # malformed rows are errors only when strict
        with pytest.raises(AnnotationError, match=r"objects\.json: row 0 object 3"):
            read_visual_genome(root, check_images=False)


def test_image_path_from_unusual_urls(tmp_path):
    from scalar.data.readers.vg_rows import image_path

    (tmp_path / "VG_100K_2").mkdir()
    (tmp_path / "VG_100K_2" / "7.jpg").write_bytes(b"x")
    (tmp_path / "8.jpg").write_bytes(b"x")
    # url with folder and name; a bare name (no "/"): both resolve under image_dir
    assert image_path(tmp_path, 7, {"url": "https://h/x/VG_100K_2/7.jpg"}) == str(
        tmp_path / "VG_100K_2" / "7.jpg"
    )
    assert image_path(tmp_path, 8, {"url": "8.jpg"}) == str(tmp_path / "8.jpg")
    assert image_path(tmp_path, 9, {"url": "9.jpg"}) == str(tmp_path / "9.jpg")  # missing: first
    assert image_path(tmp_path, 7, {}) == str(tmp_path / "VG_100K_2" / "7.jpg")
