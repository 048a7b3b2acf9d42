"""Writers of synthetic scenes in the real annotation layouts.

Input: scene records (plain dicts made by ``build.make_scene``) whose ids were assigned by
``assign_ids``. Object ids are the COCO annotation ids in every format (VG object ids too),
so corpora can be merged by id. All JSON is written compactly with a fixed key order, so a
build is byte-identical for a given seed.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

from scalar.data.synth.shapes import SHAPE_BY_NAME, polygon_area

SPLITS = ("train", "val", "test", "heldout")
IMAGE_DIR = "images"
REFCOCO_DATASET = "synthetic"
REFCOCO_SPLIT_BY = "unc"
INFO = {"description": "SCALAR synthetic shape scenes", "version": "1.0", "year": 2024}


def image_file_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.png"


def depth_file_name(image_id: int) -> str:
    """The depth map beside an image (ground-plane world): 16-bit PNG, millimetres."""
    return f"COCO_train2014_{image_id:012d}_depth.png"


def camera_fields(r: dict) -> dict:
    """``intrinsics`` / ``camera_height`` / ``depth_file`` of ground-plane images (extra keys)."""
    if "camera" not in r:
        return {}
    c = r["camera"]
    return {"intrinsics": {k: c[k] for k in ("fx", "fy", "cx", "cy")},
            "camera_height": c["height"], "depth_file": r["depth_file"]}  # fmt: skip


def geometry_fields(o: dict) -> dict:
    """``center_3d`` and ``size_3d`` (metres, camera frame) of ground-plane objects."""
    return {k: o[k] for k in ("center_3d", "size_3d") if k in o}


def dump_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)  # C encoder: one shot
    path.write_text(text, encoding="utf-8")


def assign_ids(records: list[dict]) -> None:
    """Give objects, refs, sentences, regions and relations ids unique over ``records``."""
    ids = Counter()
    for r in records:
        for o in r["objects"]:
            ids["ann"] += 1
            o["ann_id"] = ids["ann"]
        for ref in r["refs"]:
            ids["ref"] += 1
            ref["ref_id"] = ids["ref"]
            ref["sent_ids"] = list(range(ids["sent"] + 1, ids["sent"] + 1 + len(ref["sentences"])))
            ids["sent"] += len(ref["sentences"])
        for reg in r["regions"]:
            ids["region"] += 1
            reg["region_id"] = ids["region"]
        for rel in r["relations"]:
            ids["relation"] += 1
            rel["relationship_id"] = ids["relation"]


def category_rows(names: tuple[str, ...], catalogue=None) -> list[dict]:
    """``{id, name, supercategory, synset}`` for each category, ids from 1; ``catalogue``
    (the flat shapes when None): a category with ``hypernyms()`` adds them as ``hypernyms``."""
    by_name = SHAPE_BY_NAME if catalogue is None else {c.name: c for c in catalogue}
    rows = []
    for k, n in enumerate(names):
        row = {"id": k + 1, "name": n, "supercategory": by_name[n].supercategory,
               "synset": f"{n}.n.01"}  # fmt: skip
        if hasattr(by_name[n], "hypernyms"):
            row["hypernyms"] = by_name[n].hypernyms()
        rows.append(row)
    return rows


def segmentation(o: dict) -> list | dict:
    """The stored mask: the visible RLE of occluding worlds, else ``[polygon]``."""
    seg = o.get("segmentation")
    return [o["polygon"]] if seg is None else seg


def occlusion_fields(o: dict) -> dict:
    """``amodal_bbox``, ``amodal_segmentation`` (the whole outline) and ``visible_fraction``
    of objects that record them (extra keys; the readers use bbox and segmentation)."""
    if "amodal_box" not in o:
        return {}
    return {"amodal_bbox": [float(v) for v in o["amodal_box"]],
            "amodal_segmentation": [o["polygon"]],
            "visible_fraction": o["visible_fraction"]}  # fmt: skip


def object_area(o: dict) -> float:
    """The object's polygon area rounded to 0.01 (cached in the dict under ``area``)."""
    a = o.get("area")
    if a is None:
        a = o["area"] = round(polygon_area(o["polygon"]), 2)
    return a


def object_attributes(o: dict) -> list[str]:
    """Attribute words of an object: size, texture (when set), colour."""
    return [v for v in (o["size"], o.get("texture"), o["colour"]) if v]


def _xywh(o: dict) -> list[float]:
    return [float(v) for v in o["box"]]


def coco_instances(records: list[dict], cats: list[dict]) -> dict:
    """A COCO instances dict (``attributes`` on annotations is an extra key)."""
    cat_id = {c["name"]: c["id"] for c in cats}
    images, anns = [], []
    for r in records:
        images.append(
            {
                "id": r["image_id"],
                "file_name": r["file_name"],
                "width": r["width"],
                "height": r["height"],
                **camera_fields(r),
            }  # fmt: skip
        )
        for o in r["objects"]:
            anns.append(
                {
                    "id": o["ann_id"],
                    "image_id": r["image_id"],
                    "category_id": cat_id[o["category"]],
                    "bbox": _xywh(o),
                    "area": object_area(o),
                    "iscrowd": 0,
                    "segmentation": segmentation(o),
                    "attributes": object_attributes(o),
                    **occlusion_fields(o),
                    **geometry_fields(o),
                }
            )
    coco_cats = [{k: c[k] for k in ("id", "name", "supercategory")} for c in cats]
    return {"info": INFO, "licenses": [], "images": images, "annotations": anns,
            "categories": coco_cats}  # fmt: skip


def write_coco(out: Path, by_split: dict[str, list[dict]], cats: list[dict]) -> list[str]:
    files = []
    for split in SPLITS:
        rel = f"coco/annotations/instances_{split}.json"
        dump_json(coco_instances(by_split[split], cats), out / rel)
        files.append(rel)
    return files


def write_refcoco(out: Path, by_split: dict[str, list[dict]], cats: list[dict]) -> list[str]:
    """``refcoco/synthetic/refs(unc).p`` and ``instances.json`` (all splits)."""
    cat_id = {c["name"]: c["id"] for c in cats}
    refs, everything = [], []
    for split in SPLITS:
        for r in by_split[split]:
            everything.append(r)
            for ref in r["refs"]:
                o = r["objects"][ref["object"]]
                sents = [
                    {"tokens": s.split(), "raw": s, "sent": s, "sent_id": sid}
                    for s, sid in zip(ref["sentences"], ref["sent_ids"], strict=True)
                ]
                refs.append(
                    {
                        "ref_id": ref["ref_id"],
                        "ann_id": o["ann_id"],
                        "image_id": r["image_id"],
                        "split": split,
                        "sentences": sents,
                        "sent_ids": list(ref["sent_ids"]),
                        "category_id": cat_id[o["category"]],
                        "file_name": f"COCO_train2014_{r['image_id']:012d}_{o['ann_id']}.png",
                        "sent_kinds": list(ref["kinds"]),
                    }
                )
    folder = out / "refcoco" / REFCOCO_DATASET
    folder.mkdir(parents=True, exist_ok=True)
    # A JSON round trip makes object sharing (and so the pickle's memo) depend only on
    # the content, not on which process built the strings: the bytes are reproducible.
    canonical = json.loads(json.dumps(refs))
    with open(folder / f"refs({REFCOCO_SPLIT_BY}).p", "wb") as f:
        pickle.dump(canonical, f, protocol=4)
    dump_json(coco_instances(everything, cats), folder / "instances.json")
    base = f"refcoco/{REFCOCO_DATASET}"
    return [f"{base}/refs({REFCOCO_SPLIT_BY}).p", f"{base}/instances.json"]


def _frequency(image_count: int) -> str:
    return "r" if image_count <= 10 else "c" if image_count <= 100 else "f"


def write_lvis(out: Path, by_split: dict[str, list[dict]], cats: list[dict]) -> list[str]:
    """LVIS v1 files; category frequencies and counts come from the train split."""
    cat_id = {c["name"]: c["id"] for c in cats}
    img_count, inst_count = Counter(), Counter()
    for r in by_split["train"]:
        names = [o["category"] for o in r["objects"]]
        inst_count.update(names)
        img_count.update(set(names))
    lvis_cats = [
        {
            "id": c["id"],
            "name": c["name"],
            "synset": c["synset"],
            "synonyms": [c["name"]],
            "def": f"a {c['name']} ({', '.join(c['hypernyms'])})"
            if "hypernyms" in c
            else f"a {c['name']} shape ({c['supercategory']})",
            "frequency": _frequency(img_count[c["name"]]),
            "image_count": img_count[c["name"]],
            "instance_count": inst_count[c["name"]],
        }
        for c in cats
    ]
    files = []
    for split in SPLITS:
        images, anns = [], []
        for r in by_split[split]:
            images.append(
                {
                    "id": r["image_id"],
                    "width": r["width"],
                    "height": r["height"],
                    "coco_url": f"http://synthetic/{IMAGE_DIR}/{r['file_name']}",
                    "neg_category_ids": [cat_id[n] for n in r["neg_categories"]],
                    "not_exhaustive_category_ids": [],
                }  # fmt: skip
            )
            for o in r["objects"]:
                anns.append(
                    {
                        "id": o["ann_id"],
                        "image_id": r["image_id"],
                        "category_id": cat_id[o["category"]],
                        "bbox": _xywh(o),
                        "area": object_area(o),
                        "segmentation": segmentation(o),
                    }  # fmt: skip
                )
        rel = f"lvis/lvis_v1_{split}.json"
        dump_json({"info": INFO, "licenses": [], "images": images, "annotations": anns,
                   "categories": lvis_cats}, out / rel)  # fmt: skip
        files.append(rel)
    return files
