"""Synthetic corpus: determinism, expression uniqueness (independent checker), pixels,
polygons, held-out categories, relations, crowding and overlap."""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision.ops import box_iou

from scalar.data.synth import SynthConfig, build_synthetic
from scalar.data.synth.build import make_scene
from scalar.data.synth.relations import relation_holds

SMALL = dict(n_train=40, n_val=6, n_test=6, n_heldout=10, n_unlabeled=12)
SPLITS = ("train", "val", "test", "heldout")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    return out, build_synthetic(out, seed=0, **SMALL)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _coco(root: Path, split: str) -> dict:
    return json.loads((root / f"coco/annotations/instances_{split}.json").read_text())


def _objects_by_image(data: dict) -> dict[int, list[dict]]:
    """Objects per image with category name, attributes and xyxy box, in file order."""
    names = {c["id"]: c["name"] for c in data["categories"]}
    out: dict[int, list[dict]] = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        out[a["image_id"]].append(
            {
                "id": a["id"],
                "name": names[a["category_id"]],
                "attrs": set(a["attributes"]),
                "box": (x, y, x + w, y + h),
                "ann": a,
            }  # fmt: skip
        )
    return out


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    root, manifest = corpus
    again = build_synthetic(tmp_path / "a", seed=0, workers=2, **SMALL)
    assert again == manifest
    first = _hashes(root)
    n_json = 4 + 2 + 5 + 1 + 4 + 1 + 1  # coco, refcoco, vg, splits, lvis, manifest, captions
    assert len(first) == n_json + sum(SMALL.values())
    assert _hashes(tmp_path / "a") == first
    build_synthetic(tmp_path / "b", seed=1, **SMALL)
    other = _hashes(tmp_path / "b")
    assert other.keys() == first.keys()
    changed = [k for k in first if first[k] != other[k]]
    assert "coco/annotations/instances_train.json" in changed
    assert sum(k.startswith("images/") for k in changed) >= SMALL["n_train"]


# ---- an independent checker of the sentences, written from the documented rules ----
def _check_left(a, b):  # a's centre left of b's left edge and a's right edge left of b's centre
    return (a[0] + a[2]) / 2 < b[0] and a[2] < (b[0] + b[2]) / 2


def _check_above(a, b):
    return (a[1] + a[3]) / 2 < b[1] and a[3] < (b[1] + b[3]) / 2


def _check_area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def _check_gap(a, b):
    dx = max(0.0, b[0] - a[2], a[0] - b[2])
    dy = max(0.0, b[1] - a[3], a[1] - b[3])
    return (dx * dx + dy * dy) ** 0.5


CHECK_REL = {
    "left of": _check_left,
    "right of": lambda a, b: _check_left(b, a),
    "above": _check_above,
    "below": lambda a, b: _check_above(b, a),
    "bigger than": lambda a, b: _check_area(a) >= 2 * _check_area(b),
    "smaller than": lambda a, b: _check_area(b) >= 2 * _check_area(a),
    "near": lambda a, b: _check_gap(a, b) <= 0.15 * 128,
}
ORDINAL_WORDS = {"second": 1, "third": 2, "fourth": 3, "fifth": 4}
EXTREME_WORDS = {"leftmost": "left", "rightmost": "right", "top": "top", "bottom": "bottom"}


def _match(objs, words):
    """Objects whose category is the last word and whose attributes include the others."""
    *adjs, name = words
    return [o for o in objs if o["name"] == name and set(adjs) <= o["attrs"]]


def _resolve(sentence: str, kind: str, objs: list[dict]) -> list[dict]:
    words = sentence.split()
    assert words[0] == "the"
    if kind == "attribute":
        return _match(objs, words[1:])
    if kind == "relational":
        for pred in CHECK_REL:
            p = pred.split()
            for k in range(2, len(words)):
                if words[k : k + len(p)] == p and words[k + len(p)] == "the":
                    heads = _match(objs, words[1:k])
                    marks = _match(objs, words[k + len(p) + 1 :])
                    rel = CHECK_REL[pred]
                    return [h for h in heads if any(m is not h and rel(h["box"], m["box"])
                                                    for m in marks)]  # fmt: skip
        raise AssertionError(f"no predicate in {sentence!r}")
    assert kind == "ordinal", kind
    if words[1] in EXTREME_WORDS:
        side, rank, desc = EXTREME_WORDS[words[1]], 0, words[2:]
    else:
        assert words[-3:-1] == ["from", "the"], sentence
        side, rank, desc = words[-1], ORDINAL_WORDS[words[1]], words[2:-3]
    group = _match(objs, desc)
    axis = 0 if side in ("left", "right") else 1
    centres = sorted(((o["box"][axis] + o["box"][axis + 2]) / 2, o["id"]) for o in group)
    if side in ("right", "bottom"):
        centres = centres[::-1]
    chosen = centres[rank][0]
    return [o for o in group if abs((o["box"][axis] + o["box"][axis + 2]) / 2 - chosen) < 3]


def test_every_sentence_selects_exactly_its_object(corpus):
    root, manifest = corpus
    refs = pickle.loads((root / "refcoco/synthetic/refs(unc).p").read_bytes())
    objs = {}
    for split in SPLITS:
        objs.update(_objects_by_image(_coco(root, split)))
    kinds_seen = set()
    for r in refs:
        assert len(r["sent_kinds"]) == len(r["sentences"]) == len(r["sent_ids"]) >= 1
        assert len(set(r["sent_kinds"])) == len(r["sent_kinds"])  # different kinds
        for s, kind in zip(r["sentences"], r["sent_kinds"], strict=True):
            assert s["tokens"] == s["sent"].split() and s["raw"] == s["sent"]
            hits = _resolve(s["sent"], kind, objs[r["image_id"]])
            assert [o["id"] for o in hits] == [r["ann_id"]], (s["sent"], kind)
            kinds_seen.add(kind)
    assert kinds_seen == {"attribute", "relational", "ordinal"}
    assert len(refs) == sum(manifest["counts"][s]["refs"] for s in SPLITS)
    assert len({s["sent_id"] for r in refs for s in r["sentences"]}) == sum(
        manifest["counts"][s]["sentences"] for s in SPLITS
    )


def test_attribute_sentences_use_the_shortest_unique_set(corpus):
    root, _ = corpus
    refs = pickle.loads((root / "refcoco/synthetic/refs(unc).p").read_bytes())
    objs = _objects_by_image(_coco(root, "train"))
    lengths = set()
    for r in refs:
        if r["split"] != "train" or "attribute" not in r["sent_kinds"]:
            continue
        sent = r["sentences"][r["sent_kinds"].index("attribute")]["sent"]
        n_adj = len(sent.split()) - 2
        lengths.add(n_adj)
        target = next(o for o in objs[r["image_id"]] if o["id"] == r["ann_id"])
        for k in range(n_adj):  # no shorter set of the target's attributes is unique
            for adjs in itertools.combinations(sorted(target["attrs"]), k):
                assert len(_match(objs[r["image_id"]], [*adjs, target["name"]])) > 1, sent
    assert lengths == {0, 1, 2}


def test_pixels_polygons_and_areas(corpus):
    root, manifest = corpus
    colours = {k: tuple(v) for k, v in manifest["colours"].items()}
    background = tuple(manifest["background"])
    for split in SPLITS:
        data = _coco(root, split)
        by_image = _objects_by_image(data)
        for im in data["images"]:
            px = np.asarray(Image.open(root / "images" / im["file_name"]))
            assert (
                px.shape == (128, 128, 3)
                and Image.open(root / "images" / im["file_name"]).mode == "RGB"
            )
            outside = np.ones(px.shape[:2], dtype=bool)
            for o in by_image[im["id"]]:
                x1, y1, x2, y2 = (int(v) for v in o["box"])
                outside[y1:y2, x1:x2] = False
                (colour,) = [c for c in o["attrs"] if c in colours]
                rgb = colours[colour]
                assert tuple(px[(y1 + y2) // 2, (x1 + x2) // 2]) == rgb, (im["id"], o["name"])
                poly = np.asarray(o["ann"]["segmentation"][0])
                assert poly[0::2].min() >= x1 and poly[0::2].max() <= x2
                assert poly[1::2].min() >= y1 and poly[1::2].max() <= y2
                rle = mask_utils.frPyObjects(o["ann"]["segmentation"], 128, 128)
                area = float(mask_utils.area(mask_utils.merge(rle)))
                drawn = int((px[y1:y2, x1:x2] == rgb).all(-1).sum())
                assert abs(drawn - area) <= 0.15 * area, (o["name"], drawn, area)
                assert abs(o["ann"]["area"] - area) <= 0.15 * area
            assert (px[outside] == background).all()  # nothing drawn outside annotated boxes


def test_held_out_categories(corpus):
    root, manifest = corpus
    held = set(manifest["held_out_categories"])
    assert held == {"hexagon", "heart"}
    refs = pickle.loads((root / "refcoco/synthetic/refs(unc).p").read_bytes())
    for split in SPLITS:
        by_image = _objects_by_image(_coco(root, split))
        names = [o["name"] for objs in by_image.values() for o in objs]
        lvis = json.loads((root / f"lvis/lvis_v1_{split}.json").read_text())
        lvis_held = {c["id"] for c in lvis["categories"] if c["name"] in held}
        lvis_hits = [a for a in lvis["annotations"] if a["category_id"] in lvis_held]
        if split == "heldout":
            assert all(any(o["name"] in held for o in objs) for objs in by_image.values())
            assert lvis_hits
        else:
            assert not held & set(names) and not lvis_hits
            texts = [s["sent"] for r in refs if r["split"] == split for s in r["sentences"]]
            assert texts and not any(h in t for t in texts for h in held)
    ann_names = {
        o["id"]: o["name"]
        for objs in _objects_by_image(_coco(root, "heldout")).values()
        for o in objs
    }
    heldout_refs = [r for r in refs if r["split"] == "heldout"]
    assert heldout_refs and all(ann_names[r["ann_id"]] in held for r in heldout_refs)
    unl = manifest["counts"]["unlabeled"]["by_category"]
    assert all(unl.get(h, 0) > 0 for h in held)
    assert len(list((root / "unlabeled").glob("*.png"))) == SMALL["n_unlabeled"]
    cats = _coco(root, "train")["categories"]
    assert {c["name"] for c in cats} >= held and len({c["supercategory"] for c in cats}) == 3


def test_other_formats_share_ids_and_splits(corpus):
    root, manifest = corpus
    coco_ids = {
        a["id"]: (a["image_id"], a["bbox"]) for s in SPLITS for a in _coco(root, s)["annotations"]
    }
    vg = json.loads((root / "vg/objects.json").read_text())
    vg_ids = {o["object_id"]: (e["image_id"], [o["x"], o["y"], o["w"], o["h"]])
              for e in vg for o in e["objects"]}  # fmt: skip
    assert vg_ids == coco_ids
    splits = json.loads((root / "splits.json").read_text())
    for s in SPLITS:
        ids = {str(im["id"]) for im in _coco(root, s)["images"]}
        assert {k for k, v in splits.items() if v == s} == ids
        lvis = json.loads((root / f"lvis/lvis_v1_{s}.json").read_text())
        present = {}
        for a in lvis["annotations"]:
            present.setdefault(a["image_id"], set()).add(a["category_id"])
        for im in lvis["images"]:
            assert "file_name" not in im
            assert (root / "images" / im["coco_url"].rsplit("/", 1)[1]).is_file()
            assert im["neg_category_ids"] and not set(im["neg_category_ids"]) & present[im["id"]]
    all_ids = [int(k) for k in splits]
    assert sorted(all_ids) == list(range(1, len(all_ids) + 1))
    rels = json.loads((root / "vg/relationships.json").read_text())
    for e in rels[:5]:
        for rel in e["relationships"]:
            s, o = rel["subject"], rel["object"]
            a = (s["x"], s["y"], s["x"] + s["w"], s["y"] + s["h"])
            b = (o["x"], o["y"], o["x"] + o["w"], o["y"] + o["h"])
            assert CHECK_REL[rel["predicate"]](a, b)


def test_same_look_fraction(corpus):
    root, manifest = corpus
    objs = [o for v in _objects_by_image(_coco(root, "train")).values() for o in v]
    shared = 0
    for o in objs:
        same = [p for p in objs if p["ann"]["image_id"] == o["ann"]["image_id"] and p is not o
                and p["name"] == o["name"] and p["attrs"] - {"small", "large"}
                == o["attrs"] - {"small", "large"}]  # fmt: skip
        shared += bool(same)
    assert shared == manifest["counts"]["train"]["same_look_objects"]
    assert 0.28 <= shared / len(objs) <= 0.52


def test_relation_hand_cases():
    size = (100, 100)
    a, b = (0, 0, 10, 10), (20, 0, 30, 10)
    assert relation_holds("left of", a, b, size) and not relation_holds("left of", b, a, size)
    assert relation_holds("right of", b, a, size)
    c = (5, 30, 15, 40)  # below a, overlapping it in x: not left or right of it
    assert not relation_holds("left of", a, c, size) and not relation_holds("right of", c, a, size)
    assert relation_holds("above", a, c, size) and relation_holds("below", c, a, size)
    assert relation_holds("near", a, b, size)  # gap 10 <= 15
    assert not relation_holds("near", a, (0, 30, 10, 40), size)  # gap 20 > 15
    big = (40, 40, 60, 60)  # area 400 >= 2 * 100
    assert relation_holds("bigger than", big, a, size) and relation_holds(
        "smaller than", a, big, size
    )
    assert not relation_holds("bigger than", (0, 0, 12, 12), a, size)  # 144 < 200
    with pytest.raises(ValueError, match="unknown predicate"):
        relation_holds("inside", a, b, size)


def _boxes(data: dict) -> dict[int, torch.Tensor]:
    out: dict[int, list] = {}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        out.setdefault(a["image_id"], []).append([x, y, x + w, y + h])
    return {k: torch.tensor(v) for k, v in out.items()}


def test_eight_objects_without_overlap(tmp_path):
    m = build_synthetic(tmp_path, seed=3, n_train=12, n_val=0, n_test=0, n_heldout=2,
                        n_unlabeled=0, min_objects=8, max_objects=8)  # fmt: skip
    assert m["counts"]["train"]["objects"] == 8 * 12
    for split in ("train", "heldout"):
        for boxes in _boxes(_coco(tmp_path, split)).values():
            assert len(boxes) == 8
            iou = box_iou(boxes, boxes) - torch.eye(8)
            assert iou.abs().max().item() == 0.0


def test_overlap_texture_and_noise(tmp_path):
    opts = dict(n_train=15, n_val=0, n_test=0, n_heldout=0, n_unlabeled=0, max_objects=6)
    build_synthetic(tmp_path / "o", overlap=0.2, **opts)
    ious = [
        box_iou(b, b) - torch.eye(len(b)) for b in _boxes(_coco(tmp_path / "o", "train")).values()
    ]
    assert max(i.max().item() for i in ious) <= 0.2 + 1e-6
    assert max(i.max().item() for i in ious) > 0  # overlap is used when allowed
    build_synthetic(tmp_path / "t", texture=True, **opts)
    anns = _coco(tmp_path / "t", "train")["annotations"]
    textures = [a["attributes"][1] for a in anns]
    assert set(textures) == {"striped", "plain"}
    build_synthetic(tmp_path / "c", **opts)
    build_synthetic(tmp_path / "n", noise=0.05, **opts)
    name = "images/COCO_train2014_000000000001.png"
    clean = np.asarray(Image.open(tmp_path / "c" / name), dtype=np.float64)
    noisy = np.asarray(Image.open(tmp_path / "n" / name), dtype=np.float64)
    assert 5 < np.abs(clean - noisy).mean() < 20  # E|N(0, 12.75)| is about 10


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="unknown option"):
        build_synthetic(tmp_path, n_trian=3)
    with pytest.raises(ValueError, match="max_objects"):
        build_synthetic(tmp_path, max_objects=9)
    with pytest.raises(ValueError, match="unknown categories"):
        build_synthetic(tmp_path, held_out_categories=("blob",))
    with pytest.raises(ValueError, match="needs held_out_categories"):
        build_synthetic(tmp_path, held_out_categories=())
    assert SynthConfig().as_dict()["n_train"] == 4000
    cfg = SynthConfig(n_train=2, n_val=1, n_test=1, n_heldout=1, n_unlabeled=1, max_objects=3)
    m = build_synthetic(tmp_path / "cfg", config=cfg, categories=("circle", "square", "heart"),
                        held_out_categories=("heart",))  # fmt: skip
    assert [c["name"] for c in m["categories"]] == ["circle", "square", "heart"]
    assert m["counts"]["train"]["images"] == 2 and m["options"]["max_objects"] == 3


def test_unlabeled_captions_are_weak_text_and_leave_the_images_alone(corpus, tmp_path):
    root, manifest = corpus
    captions = json.loads((root / "unlabeled/captions.json").read_text())
    pngs = sorted(p.name for p in (root / "unlabeled").glob("*.png"))
    assert sorted(captions) == pngs and "unlabeled/captions.json" in manifest["files"]
    assert not (root / "unlabeled/queries.json").exists()
    cfg = SynthConfig(seed=0, **SMALL)
    held = set(manifest["held_out_categories"])
    names = {c["name"] for c in manifest["categories"]}
    n_absent = 0
    for i, name in enumerate(pngs):
        again = make_scene(cfg, "unlabeled", i, 0, str(tmp_path / name))
        # the same scene re-rendered: same pixels, and the file holds its caption
        assert (tmp_path / name).read_bytes() == (root / "unlabeled" / name).read_bytes()
        text = captions[name]
        assert isinstance(text, str) and text == again["caption"]
        assert not any(ch.isdigit() for ch in text)  # no boxes, no ids
        present = [o["category"] for o in again["objects"]]
        said = [w.strip(",") for w in text.split() if w.strip(",") in names]
        n_absent += len(set(said) - set(present))
        assert len(set(said) - set(present)) <= 1  # at most one absent category
        mentioned = [w for w in said if w in present]
        assert mentioned  # some object is named...
        if len(present) > 1:
            assert len(mentioned) < len(present)  # ...never all of several
    texts = list(captions.values())
    assert n_absent > 0  # sometimes a category that is not there
    assert any(h in t.replace(",", " ").split() for t in texts for h in held)
