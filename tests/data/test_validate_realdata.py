"""``python -m scalar.data validate`` on every real annotation sample, laid out as each
data config expects; the counts it writes must equal counts computed here from the raw
files with json/pickle only (no reader code)."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.paths import REALDATA, ROOT

COUNT_KEYS = ("images", "objects", "refs", "sentences", "regions", "relations", "categories")


def validate(name: str, root: Path, out: Path, *extra: str) -> dict:
    args = ["validate", f"data={name}", f"data.root={root}", f"out={out}", *extra]
    proc = subprocess.run(
        [sys.executable, "-m", "scalar.data", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "" or "Traceback" not in proc.stderr
    return json.loads(out.read_text())["splits"]


def box_outcome(box, width, height) -> str | None:
    """What check_box must do with a pixel xyxy box: a skip reason, or None (kept as is)."""
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box) or x2 <= x1 or y2 <= y1:
        return "degenerate_box"
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return "box_outside_image"
    return "box_clipped" if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2) else None


def xywh(b) -> tuple:
    return (b[0], b[1], b[0] + b[2], b[1] + b[3])


def empty_counts() -> dict:
    return {k: 0 for k in COUNT_KEYS} | {"skips": Counter()}


def check(got: dict, want: dict) -> None:
    assert {k: got[k] for k in COUNT_KEYS} == {k: want[k] for k in COUNT_KEYS}
    assert got["skips"] == {k: v for k, v in sorted(want["skips"].items()) if v}


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"readers never decode images")


# ---------------------------------------------------------------- COCO / LVIS


def instances_counts(data: dict, present, lvis: bool = False) -> dict:
    """Expected counts of an instances JSON whose images ``present(row)`` exist."""
    c = empty_counts()
    skips = c["skips"]
    cats = set()
    for cat in data["categories"]:
        if cat["id"] in cats:
            skips["duplicate_category_id"] += 1
        cats.add(cat["id"])
    c["categories"] = len(cats)
    images, missing = {}, set()
    for im in data["images"]:
        if im["id"] in images or im["id"] in missing:
            skips["duplicate_image_id"] += 1
        elif not present(im):
            skips["missing_image"] += 1
            missing.add(im["id"])
        else:
            images[im["id"]] = im
            for key in ("neg_category_ids", "not_exhaustive_category_ids") if lvis else ():
                skips[f"unknown_category_in_{key}"] += sum(1 for v in im[key] if v not in cats)
    c["images"] = len(images)
    seen = set()
    for a in data["annotations"]:
        if a["id"] in seen:
            skips["duplicate_annotation_id"] += 1
            continue
        seen.add(a["id"])
        if a["image_id"] in missing:
            skips["annotations_of_missing_images"] += 1
            continue
        if a["image_id"] not in images:
            skips["unknown_image"] += 1
            continue
        if a["category_id"] not in cats:
            skips["unknown_category"] += 1
            continue
        im = images[a["image_id"]]
        outcome = box_outcome(xywh(a["bbox"]), im["width"], im["height"])
        if outcome:
            skips[outcome] += 1
        if outcome in ("degenerate_box", "box_outside_image"):
            continue
        c["objects"] += 1
        seg = a.get("segmentation")
        if isinstance(seg, list):
            skips["invalid_polygon"] += sum(1 for p in seg if len(p) < 6 or len(p) % 2)
        elif isinstance(seg, dict) and list(seg["size"]) != [im["height"], im["width"]]:
            skips["invalid_mask"] += 1
    return c


def test_coco(tmp_path):
    raw_file = REALDATA / "coco" / "airo_instances_val2017_small.json"
    data = json.loads(raw_file.read_text())
    root = tmp_path / "coco"
    for split in ("train", "val"):  # the sample serves as both splits
        touch(root / "annotations" / f"instances_{split}2017.json")
        shutil.copy(raw_file, root / "annotations" / f"instances_{split}2017.json")
    shutil.copytree(REALDATA / "coco" / "images", root / "val2017")  # one of the 3 images
    got = validate("coco", root, tmp_path / "v.json")
    assert set(got) == {"train", "val"}
    val_files = {p.name for p in (root / "val2017").iterdir()}
    check(got["val"], instances_counts(data, lambda im: im["file_name"] in val_files))
    check(got["train"], instances_counts(data, lambda im: False))
    assert got["val"]["images"] == 1 and got["val"]["skips"]["missing_image"] == 2
    assert got["train"]["skips"]["annotations_of_missing_images"] == len(data["annotations"])


def test_lvis_v05(tmp_path):
    raw_file = REALDATA / "lvis" / "lvis_api_lvis_val_100_v0.5.json"
    data = json.loads(raw_file.read_text())
    root = tmp_path / "lvis"
    root.mkdir()
    for split in ("train", "val"):
        shutil.copy(raw_file, root / f"lvis_v1_{split}.json")
    # v0.5 names COCO 2014 val files (file_name): coco_root is the folder holding them
    images = tmp_path / "coco" / "val2014"
    kept = {im["file_name"] for im in data["images"][::7]}
    for name in kept:
        touch(images / name)
    got = validate("lvis", root, tmp_path / "v.json", f"data.source.coco_root={images}")
    assert set(got) == {"train", "val"}
    want = instances_counts(data, lambda im: im["file_name"] in kept, lvis=True)
    for split in ("train", "val"):
        check(got[split], want)
    assert got["val"]["images"] == len(kept)
    assert got["val"]["skips"]["missing_image"] == len(data["images"]) - len(kept)


# ---------------------------------------------------------------- RefCOCO / + / g


def refcoco_layout(root: Path, raw: dict) -> list[tuple[str, str]]:
    """Refer-toolkit files (refs(<split_by>).p + instances.json) per dataset."""
    images = [v["info"] for v in raw["coco_anns"].values()]
    anns = [a for v in raw["coco_anns"].values() for a in v["anns"]]
    cats = [{"id": c, "name": f"cat{c}"} for c in sorted({a["category_id"] for a in anns})]
    combos: dict[tuple[str, str], list] = {}
    for r in raw["ref"]:
        rec = {k: v for k, v in r.items() if k not in ("ann", "dataset", "dataset_partition")}
        combos.setdefault((r["dataset"], r["dataset_partition"]), []).append(rec)
    for (dataset, split_by), recs in combos.items():
        (root / dataset).mkdir(parents=True, exist_ok=True)
        (root / dataset / f"refs({split_by}).p").write_bytes(pickle.dumps(recs))
        inst = {"images": images, "annotations": anns, "categories": cats}
        (root / dataset / "instances.json").write_text(json.dumps(inst))
    return sorted(combos)


def refcoco_counts(raw: dict, dataset: str, split_by: str, split: str, present: set) -> dict:
    c = empty_counts()
    skips = c["skips"]
    anns = {a["id"]: a for v in raw["coco_anns"].values() for a in v["anns"]}
    infos = {v["info"]["id"]: v["info"] for v in raw["coco_anns"].values()}
    c["categories"] = len({a["category_id"] for a in anns.values()})
    refs = [
        r
        for r in raw["ref"]
        if (r["dataset"], r["dataset_partition"], r["split"]) == (dataset, split_by, split)
    ]
    by_image: dict = {}
    for r in refs:
        sents = [s["sent"].strip() for s in r["sentences"] if s["sent"].strip()]
        by_image.setdefault(r["image_id"], []).append((r["ann_id"], len(sents)))
    for image_id, image_refs in by_image.items():
        if image_id not in present:
            skips["missing_image"] += 1
            skips["refs_of_missing_images"] += len(image_refs)
            continue
        c["images"] += 1
        info, kept = infos[image_id], set()
        for a in anns.values():
            if a["image_id"] != image_id:
                continue
            outcome = box_outcome(xywh(a["bbox"]), info["width"], info["height"])
            if outcome:
                skips[outcome] += 1
            if outcome not in ("degenerate_box", "box_outside_image"):
                kept.add(a["id"])
        c["objects"] += len(kept)
        for ann_id, n in image_refs:
            if ann_id in kept:
                c["refs"] += 1
                c["sentences"] += n
            else:
                skips["ref_object_dropped"] += 1
    return c


def test_refcoco_every_dataset_and_split_by(tmp_path):
    raw = json.loads((REALDATA / "refcoco" / "tfds_ref_coco_dummy_refcoco.json").read_text())
    root = tmp_path / "refcoco"
    combos = refcoco_layout(root, raw)
    assert len(combos) == 5  # refcoco unc/google, refcoco+ unc, refcocog umd/google
    image_dir = tmp_path / "train2014"
    ids = sorted(int(k) for k in raw["coco_anns"])
    present = set(ids[::2])  # half of the images exist
    for image_id in present:
        touch(image_dir / f"COCO_train2014_{image_id:012d}.jpg")
    total_refs = 0
    for dataset, split_by in combos:
        out = tmp_path / f"{dataset}_{split_by}.json"
        got = validate(
            "refcoco",
            root,
            out,
            f"data.source.dataset={dataset}",
            f"data.source.split_by={split_by}",
            f"data.source.image_dir={image_dir}",
        )
        assert set(got) == {"train", "val", "test", "testA", "testB"}
        for split, counts in got.items():
            check(counts, refcoco_counts(raw, dataset, split_by, split, present))
            total_refs += counts["refs"] + counts["skips"].get("refs_of_missing_images", 0)
    assert total_refs == len(raw["ref"])


# ---------------------------------------------------------------- Visual Genome


def _iid(entry: dict):
    return entry["image_id"] if "image_id" in entry else entry["id"]


def _oid(row: dict):
    return row["object_id"] if "object_id" in row else row["id"]


def _name(row: dict) -> str | None:
    names = row.get("names", row.get("object_names", row.get("name")))
    names = [names] if isinstance(names, str) else names or []
    return next((n.strip().lower() for n in names if isinstance(n, str) and n.strip()), None)


def vg_counts(folder: Path, present: set, splits: dict) -> dict[str, dict]:
    """Expected per-split counts: each skip lands on the split of the image it belongs to
    (an image in no split takes its rows' skips with it); ``image_not_in_splits_file``
    belongs to no image and lands on the first split (train)."""
    load = lambda name: json.loads((folder / f"{name}.json").read_text())  # noqa: E731
    sizes = {e["image_id"]: (e["width"], e["height"]) for e in load("image_data")}
    skips: dict = {i: Counter() for i in sizes}  # image -> reason -> count
    objects = {i: {} for i in sizes}  # image -> object id -> kept?
    raw_boxes = {i: {} for i in sizes}
    names = {i: {} for i in sizes}  # image -> object id -> category name
    relations, regions = Counter(), Counter()

    def add(image_id, row, listed: bool):
        oid, box = _oid(row), xywh([row["x"], row["y"], row["w"], row["h"]])
        if oid in objects[image_id]:
            if listed and objects[image_id][oid] and raw_boxes[image_id][oid] != box:
                skips[image_id]["duplicate_object_id"] += 1
            return objects[image_id][oid]
        if _name(row) is None:
            skips[image_id]["object_without_name"] += 1
            objects[image_id][oid] = False
            return False
        outcome = box_outcome(box, *sizes[image_id])
        if outcome:
            skips[image_id][outcome] += 1
        objects[image_id][oid] = outcome not in ("degenerate_box", "box_outside_image")
        raw_boxes[image_id][oid] = box
        names[image_id][oid] = _name(row)
        return objects[image_id][oid]

    for e in load("objects"):
        for row in e["objects"]:
            add(_iid(e), row, True)
    for e in load("attributes"):
        for row in e["attributes"]:
            add(_iid(e), row, False)
    for e in load("relationships"):
        for row in e["relationships"]:
            s, o = add(_iid(e), row["subject"], False), add(_iid(e), row["object"], False)
            if not (s and o):
                skips[_iid(e)]["relation_endpoint_dropped"] += 1
            elif not str(row["predicate"]).strip():
                skips[_iid(e)]["empty_predicate"] += 1
            else:
                relations[_iid(e)] += 1
    for e in load("region_descriptions"):
        w, h = sizes[_iid(e)]
        for row in e["regions"]:
            if not row["phrase"].strip():
                skips[_iid(e)]["empty_region_phrase"] += 1
                continue
            outcome = box_outcome(xywh([row["x"], row["y"], row["width"], row["height"]]), w, h)
            if outcome:
                skips[_iid(e)][outcome] += 1
            regions[_iid(e)] += outcome not in ("degenerate_box", "box_outside_image")
    for i in sizes:
        if i not in present:
            skips[i]["missing_image"] += 1
    unplaced = sum(1 for i in sizes if i in present and i not in splits)
    categories = {n for i in present for o, n in names[i].items() if objects[i][o]}
    out = {}
    for split in ("train", "val", "test"):
        c = empty_counts()
        ids = [i for i in sizes if i in present and splits.get(i) == split]
        c["images"] = len(ids)
        c["objects"] = sum(sum(1 for v in objects[i].values() if v) for i in ids)
        c["relations"] = sum(relations[i] for i in ids)
        c["regions"] = sum(regions[i] for i in ids)
        c["categories"] = len(categories)
        c["skips"] = sum((skips[i] for i in sizes if splits.get(i) == split), Counter())
        if split == "train" and unplaced:
            c["skips"]["image_not_in_splits_file"] = unplaced
        out[split] = c
    return out


@pytest.mark.parametrize("version", ["v1.2", "v1.0"])
def test_visual_genome(tmp_path, version):
    root = tmp_path / "vg"
    shutil.copytree(REALDATA / "visual_genome" / version, root)
    if version == "v1.0":  # v1.0 ships no image_data.json: v1.2's lists the same images
        shutil.copy(REALDATA / "visual_genome" / "v1.2" / "image_data.json", root)
    image_data = json.loads((root / "image_data.json").read_text())
    present = {1, 2, 3, 5}  # image 4 is missing
    for e in image_data:
        if e["image_id"] in present:  # <root>/VG_100K(_2)/<id>.jpg, as in the url
            touch(root / Path(*e["url"].split("/")[-2:]))
    splits = {1: "train", 2: "train", 3: "val", 4: "test"}  # image 5 is in no split
    splits_file = tmp_path / "splits.json"
    splits_file.write_text(json.dumps({str(k): v for k, v in splits.items()}))
    got = validate("vg", root, tmp_path / "v.json", f"data.source.splits_file={splits_file}")
    want = vg_counts(root, present, splits)
    assert set(got) == set(want)
    for split in want:
        check(got[split], want[split])
    assert got["test"]["skips"]["missing_image"] == 1  # image 4 is a test image
    assert "missing_image" not in got["train"]["skips"]
    assert got["train"]["skips"]["image_not_in_splits_file"] == 1
