"""RefCOCO/+/g reader on the raw refer layout rebuilt from TFDS's real sample."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import pytest

from scalar.data.readers.common import strict_rows
from scalar.data.readers.refcoco import read_refcoco
from scalar.data.scene import AnnotationError
from tests.paths import REALDATA

SAMPLE = REALDATA / "refcoco" / "tfds_ref_coco_dummy_refcoco.json"

COMBOS = [
    ("refcoco", "unc"),
    ("refcoco", "google"),
    ("refcoco+", "unc"),
    ("refcocog", "google"),
    ("refcocog", "umd"),
]


def _raw_record(ref: dict) -> dict:
    return {k: v for k, v in ref.items() if k not in ("ann", "dataset", "dataset_partition")}


def _write_layout(root: Path, data: dict, extra_refs: dict | None = None) -> None:
    images = [v["info"] for v in data["coco_anns"].values()]
    anns = [a for v in data["coco_anns"].values() for a in v["anns"]]
    cat_ids = sorted({a["category_id"] for a in anns})
    cats = [{"id": c, "name": f"cat{c}", "supercategory": f"super{c % 3}"} for c in cat_ids]
    by_combo: dict[tuple[str, str], list] = {}
    for r in data["ref"]:
        by_combo.setdefault((r["dataset"], r["dataset_partition"]), []).append(_raw_record(r))
    for (dataset, split_by), recs in by_combo.items():
        folder = root / dataset
        folder.mkdir(parents=True, exist_ok=True)
        recs = recs + (extra_refs or {}).get((dataset, split_by), [])
        with open(folder / f"refs({split_by}).p", "wb") as f:
            pickle.dump(recs, f)
        inst = {"images": images, "annotations": anns, "categories": cats}
        (folder / "instances.json").write_text(json.dumps(inst))


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(SAMPLE.read_text())


@pytest.fixture()
def layout(tmp_path: Path, raw: dict) -> Path:
    _write_layout(tmp_path, raw)
    return tmp_path


def _raw_refs(raw: dict, dataset: str, split_by: str) -> list[dict]:
    return [r for r in raw["ref"] if (r["dataset"], r["dataset_partition"]) == (dataset, split_by)]


def test_all_combos_present(raw):
    assert {(r["dataset"], r["dataset_partition"]) for r in raw["ref"]} == set(COMBOS)


@pytest.mark.parametrize("dataset,split_by", COMBOS)
def test_counts_boxes_and_paths_per_combo(layout, raw, dataset, split_by):
    corpus = read_refcoco(layout, dataset, split_by, check_images=False)
    refs = _raw_refs(raw, dataset, split_by)
    assert not corpus.skips, corpus.skips.report()

    got_refs = Counter(r.split for s in corpus.scenes for r in s.refs)
    got_sents = Counter()
    for s in corpus.scenes:
        for r in s.refs:
            got_sents[r.split] += len(r.sentences)
    assert got_refs == Counter(r["split"] for r in refs)
    want_sents = Counter()
    for r in refs:
        want_sents[r["split"]] += len(r["sentences"])
    assert got_sents == want_sents

    raw_by_ref = {r["ref_id"]: r for r in refs}
    all_anns = {a["id"]: a for v in raw["coco_anns"].values() for a in v["anns"]}
    for scene in corpus.scenes:
        iid = scene.image.id
        assert Path(scene.image.path) == layout / "images" / f"COCO_train2014_{iid:012d}.jpg"
        info = raw["coco_anns"][str(iid)]["info"]
        assert (scene.image.width, scene.image.height) == (info["width"], info["height"])
        assert len(scene.objects) == len(raw["coco_anns"][str(iid)]["anns"])
        objs = scene.object_by_id()
        for ref in scene.refs:
            rr = raw_by_ref[ref.ref_id]
            assert (ref.dataset, ref.split_by, ref.split) == (dataset, split_by, rr["split"])
            assert ref.object_id == rr["ann_id"] and rr["image_id"] == iid
            assert ref.sentences == [s["sent"] for s in rr["sentences"]]
            x, y, w, h = rr["ann"]["bbox"]
            assert objs[ref.object_id].box == pytest.approx((x, y, x + w, y + h))
            assert objs[ref.object_id].category == f"cat{rr['ann']['category_id']}"
            assert objs[ref.object_id].mask == all_anns[ref.object_id]["segmentation"]
        splits = {r.split for r in scene.refs}
        assert scene.split == (splits.pop() if len(splits) == 1 else None)
    # splits=None keeps every image of instances.json
    assert sorted(s.image.id for s in corpus.scenes) == sorted(map(int, raw["coco_anns"]))


def test_splits_filter(layout, raw):
    corpus = read_refcoco(layout, "refcoco", "unc", splits=["testA"], check_images=False)
    want = [r for r in _raw_refs(raw, "refcoco", "unc") if r["split"] == "testA"]
    assert sorted(r.ref_id for s in corpus.scenes for r in s.refs) == sorted(
        r["ref_id"] for r in want
    )
    assert sorted(s.image.id for s in corpus.scenes) == sorted({r["image_id"] for r in want})
    assert all(s.split == "testA" for s in corpus.scenes)
    # a single string works too, and a split with no refs gives no images
    assert read_refcoco(layout, "refcocog", "umd", splits="testB", check_images=False).scenes == []


def test_unknown_ann_duplicate_and_empty_refs_are_counted(tmp_path, raw):
    base = _raw_refs(raw, "refcoco", "unc")[0]
    extra = [
        {**_raw_record(base), "ref_id": 999001, "ann_id": 123456789},
        {**_raw_record(base), "ref_id": 999002, "sentences": []},
        _raw_record(base),  # same ref_id again
    ]
    _write_layout(tmp_path, raw, {("refcoco", "unc"): extra})
    corpus = read_refcoco(tmp_path, "refcoco", "unc", check_images=False)
    assert corpus.skips.as_dict() == {
        "ref_unknown_annotation": 1,
        "ref_without_sentences": 1,
        "duplicate_ref_id": 1,
    }
    assert corpus.counts()["refs"] == len(_raw_refs(raw, "refcoco", "unc"))


def test_missing_images_are_counted(layout, raw):
    refs = _raw_refs(raw, "refcocog", "umd")
    present = refs[0]["image_id"]
    images = layout / "images"
    images.mkdir()
    (images / f"COCO_train2014_{present:012d}.jpg").write_bytes(b"not decoded by readers")
    corpus = read_refcoco(layout, "refcocog", "umd", check_images=True)
    assert [s.image.id for s in corpus.scenes] == [present]
    assert corpus.skips.counts["missing_image"] == len(raw["coco_anns"]) - 1
    lost = sum(1 for r in refs if r["image_id"] != present)
    assert corpus.skips.counts.get("refs_of_missing_images", 0) == lost
    assert len(corpus.scenes[0].refs) == len(refs) - lost


def test_unknown_split_by_lists_files(layout):
    with pytest.raises(FileNotFoundError, match=r"refs\(unc\)\.p.*instances\.json"):
        read_refcoco(layout, "refcocog", "unc")
    with pytest.raises(FileNotFoundError, match="refcocoz"):
        read_refcoco(layout, "refcocoz", "unc")


def test_malformed_rows_name_file_and_row(tmp_path, raw):
    bad = {k: v for k, v in _raw_record(raw["ref"][0]).items() if k != "ann_id"}
    _write_layout(tmp_path, raw)
    refs_file = tmp_path / "refcoco" / "refs(google).p"
    recs = pickle.loads(refs_file.read_bytes())
    refs_file.write_bytes(pickle.dumps(recs[:1] + [bad]))
    with strict_rows():  # malformed rows are errors only when strict
        with pytest.raises(AnnotationError, match=r"refs\(google\)\.p: row 1: missing key"):
            read_refcoco(tmp_path, "refcoco", "google", check_images=False)
    inst = tmp_path / "refcoco" / "instances.json"
    data = json.loads(inst.read_text())
    data["annotations"][2]["bbox"] = [1, 2, 3]
    inst.write_text(json.dumps(data))
    with strict_rows():  # malformed rows are errors only when strict
        with pytest.raises(AnnotationError, match=r"instances\.json: row annotations\[2\]"):
            read_refcoco(tmp_path, "refcoco", "unc", check_images=False)
