"""LVIS reader: real v0.5 sample against the raw JSON, a v1-style copy, bad rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path, PurePosixPath

import pytest

from scalar.data.readers.common import strict_rows
from scalar.data.readers.lvis import read_lvis
from scalar.data.scene import AnnotationError
from tests.paths import REALDATA

LVIS = REALDATA / "lvis"
ANN = LVIS / "lvis_api_lvis_val_100_v0.5.json"
SYNSETS = LVIS / "lvis_api_coco_to_synset.json"
COCO = REALDATA / "coco" / "airo_instances_val2017_small.json"

real = pytest.mark.realdata


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(ANN.read_text())


@pytest.fixture(scope="module")
def corpus():
    return read_lvis(ANN, "/imgs", split="val", check_images=False)


@real
def test_counts_equal_raw(raw, corpus):
    assert len(corpus.scenes) == len(raw["images"]) == 100
    assert sum(len(s.objects) for s in corpus.scenes) == len(raw["annotations"]) == 977
    assert len(corpus.categories) == len(raw["categories"]) == 1230
    with_anns = {a["image_id"] for a in raw["annotations"]}
    assert sum(bool(s.objects) for s in corpus.scenes) == len(with_anns) == 93
    assert not corpus.skips
    assert [s.image.id for s in corpus.scenes] == sorted(r["id"] for r in raw["images"])
    assert corpus.meta["format"] == "lvis" and corpus.meta["version"] == "v0.5"
    assert all(s.split == "val" for s in corpus.scenes)


@real
def test_categories_synsets_frequency_synonyms(raw, corpus):
    cats = {c["id"]: c for c in raw["categories"]}
    assert [c.id for c in corpus.categories] == sorted(cats)
    for c in corpus.categories:
        r = cats[c.id]
        assert (c.name, c.synset, c.frequency) == (r["name"], r["synset"], r["frequency"])
        assert c.supercategory is None
        assert corpus.meta["synonyms"][c.name] == r["synonyms"]
        assert corpus.meta["definitions"][c.name] == r["def"]
    freq = Counter(c.frequency for c in corpus.categories)
    assert freq == Counter(r["frequency"] for r in raw["categories"])
    assert freq == {"r": 454, "c": 461, "f": 315}


@real
def test_objects_and_paths(raw, corpus):
    cats = {c["id"]: c for c in raw["categories"]}
    objs = {o.id: (s, o) for s in corpus.scenes for o in s.objects}
    for a in raw["annotations"]:
        scene, o = objs[a["id"]]
        x, y, w, h = a["bbox"]
        assert scene.image.id == a["image_id"]
        assert o.box == pytest.approx((x, y, x + w, y + h), abs=1e-9)
        assert (o.category, o.synset) == (
            cats[a["category_id"]]["name"],
            cats[a["category_id"]]["synset"],
        )
        assert o.category_id == a["category_id"] and not o.iscrowd
        assert o.mask == a["segmentation"]
    images = {r["id"]: r for r in raw["images"]}
    for s in corpus.scenes:
        r = images[s.image.id]
        assert s.image.path == str(Path("/imgs") / r["file_name"])
        assert (s.image.width, s.image.height) == (r["width"], r["height"])


@real
def test_negative_and_not_exhaustive_lists(raw, corpus):
    names = {c["id"]: c["name"] for c in raw["categories"]}
    images = {r["id"]: r for r in raw["images"]}
    assert any(r["not_exhaustive_category_ids"] for r in raw["images"])
    for s in corpus.scenes:
        r = images[s.image.id]
        assert s.meta["neg_category_ids"] == r["neg_category_ids"]
        assert s.meta["not_exhaustive_category_ids"] == r["not_exhaustive_category_ids"]
        assert s.meta["neg_categories"] == [names[i] for i in r["neg_category_ids"]]
        assert s.meta["not_exhaustive_categories"] == [
            names[i] for i in r["not_exhaustive_category_ids"]
        ]


@real
def test_supercategory_from_coco_synsets(raw):
    coco_sup = {c["name"]: c["supercategory"] for c in json.loads(COCO.read_text())["categories"]}
    to_synset = json.loads(SYNSETS.read_text())
    mapping = {v["synset"]: coco_sup[name] for name, v in to_synset.items()}
    corpus = read_lvis(ANN, "/imgs", check_images=False, synset_to_supercategory=mapping)
    for c in corpus.categories:
        assert c.supercategory == mapping.get(c.synset)
    expected = sum(c["synset"] in mapping for c in raw["categories"])
    assert expected > 0
    assert sum(c.supercategory is not None for c in corpus.categories) == expected
    by_name = {c.name: c.supercategory for c in corpus.categories}
    for s in corpus.scenes:
        for o in s.objects:
            assert o.supercategory == by_name[o.category]


def _v1_copy(raw: dict, tmp_path: Path) -> Path:
    data = json.loads(json.dumps(raw))
    for r in data["images"]:
        del r["file_name"]
    p = tmp_path / "lvis_v1_val_copy.json"
    p.write_text(json.dumps(data))
    return p


@real
def test_v1_paths_from_coco_url(raw, tmp_path):
    path = _v1_copy(raw, tmp_path)
    corpus = read_lvis(path, tmp_path / "coco", check_images=False)
    assert corpus.meta["version"] == "v1"
    urls = {r["id"]: r["coco_url"] for r in raw["images"]}
    for s in corpus.scenes:
        url = PurePosixPath(urls[s.image.id])
        assert url.parent.name == "val2017"
        assert s.image.path == str(tmp_path / "coco" / "val2017" / url.name)
        assert len(url.stem) == 12 and url.stem.isdigit()
    # with images checked, only the ones placed in the derived layout are kept
    keep = sorted(urls)[:3]
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    for i in keep:
        (tmp_path / "coco" / "val2017" / PurePosixPath(urls[i]).name).write_bytes(b"")
    checked = read_lvis(path, tmp_path / "coco", check_images=True)
    assert [s.image.id for s in checked.scenes] == keep
    assert checked.skips.counts["missing_image"] == 97
    n_kept = sum(a["image_id"] in keep for a in raw["annotations"])
    assert checked.skips.counts["annotations_of_missing_images"] == 977 - n_kept
    assert sum(len(s.objects) for s in checked.scenes) == n_kept


@real
def test_missing_images_on_empty_dir(tmp_path):
    corpus = read_lvis(ANN, tmp_path, check_images=True)
    assert corpus.scenes == []
    assert corpus.skips.as_dict() == {"annotations_of_missing_images": 977, "missing_image": 100}


# ---- hand-made files -----------------------------------------------------------------


def _small() -> dict:
    url = "http://images.cocodataset.org/train2017/000000000042.jpg"
    cat = {"id": 1, "name": "mug", "synset": "mug.n.04", "frequency": "f", "synonyms": ["mug"]}
    return {
        "images": [
            {"id": 42, "coco_url": url, "width": 64, "height": 48, "neg_category_ids": [2, 9]},
            {"id": 42, "coco_url": url, "width": 64, "height": 48},
        ],
        "categories": [cat, dict(cat, id=2, name="cup", synset="cup.n.01", frequency="c")],
        "annotations": [
            {"id": 1, "image_id": 42, "category_id": 1, "bbox": [60, 40, 10, 10]},
            {"id": 2, "image_id": 42, "category_id": 7, "bbox": [1, 1, 5, 5]},
            {"id": 3, "image_id": 5, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 3, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 4, "image_id": 42, "category_id": 2, "bbox": [1, 1, -5, 5]},
            {"id": 5, "image_id": 42, "category_id": 2, "bbox": [70, 1, 5, 5]},
        ],
    }


def test_bad_rows_counted_once(tmp_path):
    p = tmp_path / "small.json"
    p.write_text(json.dumps(_small()))
    corpus = read_lvis(p, tmp_path, check_images=False)
    assert corpus.skips.as_dict() == {
        "box_clipped": 1,
        "box_outside_image": 1,
        "degenerate_box": 1,
        "duplicate_annotation_id": 1,
        "duplicate_image_id": 1,
        "unknown_category": 1,
        "unknown_image": 1,
        "unknown_category_in_neg_category_ids": 1,
    }
    (scene,) = corpus.scenes
    assert scene.image.path == str(tmp_path / "train2017" / "000000000042.jpg")
    assert [o.box for o in scene.objects] == [(60.0, 40.0, 64.0, 48.0)]
    assert scene.meta["neg_category_ids"] == [2] and scene.meta["neg_categories"] == ["cup"]
    assert scene.meta["not_exhaustive_category_ids"] == []


@pytest.mark.parametrize(
    "edit, row",
    [
        (lambda d: d["images"][0].pop("coco_url"), "images[0]"),
        (lambda d: d["images"][0].update(not_exhaustive_category_ids=3), "images[0]"),
        (lambda d: d["categories"][1].update(frequency="x"), "categories[1]"),
        (lambda d: d["annotations"][3].pop("bbox"), "annotations[3]"),
    ],
)
def test_malformed_rows_raise(tmp_path, edit, row):
    data = _small()
    edit(data)
    p = tmp_path / "bad_lvis.json"
    p.write_text(json.dumps(data))
    with strict_rows():  # malformed rows are errors only when strict
        with pytest.raises(AnnotationError) as e:
            read_lvis(p, tmp_path, check_images=False)
    assert "bad_lvis.json" in str(e.value) and row in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="lvis_nope.json"):
        read_lvis(tmp_path / "lvis_nope.json", tmp_path)
