"""Seeded fuzz of the readers and the Dataset: every injected fault is either an exact,
counted skip (counts derived here from what was injected) or one documented error
(AnnotationError / FileNotFoundError, one line naming the file and the row)."""

from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scalar.data.dataset import SampleDataset
from scalar.data.readers.coco import read_coco
from scalar.data.readers.common import strict_rows
from scalar.data.readers.lvis import read_lvis
from scalar.data.readers.refcoco import read_refcoco
from scalar.data.readers.vg import read_visual_genome
from scalar.data.sample import Sample
from scalar.data.scene import AnnotationError, ImageInfo
from tests.paths import ROOT

SEEDS = range(6)
KEEP = ("ok", "clipped")  # box faults after which the object is kept
BOX_FAULTS = ("ok", "ok", "ok", "clipped", "outside", "zero", "negative")
REASON = {"clipped": "box_clipped", "outside": "box_outside_image"}
REASON |= {"zero": "degenerate_box", "negative": "degenerate_box"}


def fault_box(rng: random.Random, kind: str, w: int, h: int) -> list[float]:
    """An ``[x, y, bw, bh]`` box of the given fault kind in a ``w x h`` image."""
    x, y = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
    bw, bh = rng.uniform(1, w / 2 - 1), rng.uniform(1, h / 2 - 1)
    if kind == "clipped":  # overlaps a border
        return rng.choice(
            [[-bw / 2, y, bw, bh], [x, y, w, bh], [x, -bh / 2, bw, bh], [x, y, bw, h]]
        )
    if kind == "outside":  # no overlap at all
        return rng.choice([[w + 1.0, y, bw, bh], [x, h + 2.0, bw, bh], [-bw - 1, y, bw, bh]])
    if kind == "zero":
        return rng.choice([[x, y, 0, bh], [x, y, bw, 0]])
    if kind == "negative":
        return rng.choice([[x, y, -bw, bh], [x, y, bw, -bh]])
    return [x, y, bw, bh]


def one_line_error(exc: pytest.ExceptionInfo, path: Path, row: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and f"row {row}" in msg, msg


# ---------------------------------------------------------------- COCO / LVIS


def coco_fuzz(rng: random.Random, image_dir: Path, lvis: bool = False):
    """Instances JSON with injected faults, and the exact skips they must give."""
    want = Counter()
    cats = [{"id": c, "name": f"c{c}", "synset": f"s{c}.n.01"} for c in range(1, 6)]
    cats.append(dict(cats[0]))  # duplicate category id
    want["duplicate_category_id"] += 1
    images, missing, sizes = [], set(), {}
    for i in range(1, rng.randint(4, 8)):
        w, h = rng.randint(20, 300), rng.randint(20, 300)
        name = f"{i:06d}.jpg"
        row = {"id": i, "width": w, "height": h, "file_name": name}
        if lvis:
            row |= {"neg_category_ids": [1, 77], "not_exhaustive_category_ids": []}
        images.append(row)
        sizes[i] = (w, h)
        if rng.random() < 0.3:
            missing.add(i)
            want["missing_image"] += 1
        else:
            (image_dir / name).write_bytes(b"x")
            want["unknown_category_in_neg_category_ids"] += lvis
    images.append(dict(images[0]))  # duplicate image id
    want["duplicate_image_id"] += 1
    anns, kept = [], 0
    for a in range(1, rng.randint(20, 60)):
        kind = rng.choice(BOX_FAULTS + ("unknown_image", "unknown_category", "duplicate"))
        iid = rng.choice(list(sizes))
        w, h = sizes[iid]
        row = {"id": a, "image_id": iid, "category_id": rng.randint(1, 5), "iscrowd": 0}
        row["bbox"] = fault_box(rng, kind if kind in REASON else "ok", w, h)
        if kind == "duplicate" and anns:
            want["duplicate_annotation_id"] += 1
            row["id"] = rng.choice(anns)["id"]
        elif iid in missing:
            want["annotations_of_missing_images"] += 1
        elif kind == "unknown_image":
            row["image_id"] = 10_000 + a
            want["unknown_image"] += 1
        elif kind == "unknown_category":
            row["category_id"] = 999
            want["unknown_category"] += 1
        elif kind in REASON:
            want[REASON[kind]] += 1
            kept += kind in KEEP
        else:
            kept += 1
        anns.append(row)
    data = {"images": images, "annotations": anns, "categories": cats}
    return data, +want, kept, len(sizes) - len(missing)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lvis", [False, True])
def test_instances_exact_skips(tmp_path, seed, lvis):
    rng = random.Random(seed)
    data, want, kept, n_images = coco_fuzz(rng, tmp_path, lvis)
    path = tmp_path / "inst.json"
    path.write_text(json.dumps(data))
    read = read_lvis if lvis else read_coco
    corpus = read(path, tmp_path)
    assert corpus.skips.as_dict() == dict(sorted(want.items()))
    assert corpus.counts()["objects"] == kept and len(corpus.scenes) == n_images
    for s in corpus.scenes:
        for o in s.objects:
            x1, y1, x2, y2 = o.box
            assert 0 <= x1 < x2 <= s.image.width and 0 <= y1 < y2 <= s.image.height


MALFORMED_INSTANCES = [  # (edit of a valid file, the row the error must name)
    (lambda d: d["annotations"][3].update(bbox="1,2,3,4"), "annotations[3]"),
    (lambda d: d["annotations"][2].update(bbox=None), "annotations[2]"),
    (lambda d: d["annotations"][1].update(bbox=["1", 2, 3, 4]), "annotations[1]"),
    (lambda d: d["annotations"].__setitem__(4, [1, 2]), "annotations[4]"),
    (lambda d: d["images"][1].update(width="640"), "images[1]"),
    (lambda d: d["images"].__setitem__(0, "000001.jpg"), "images[0]"),
    (lambda d: d.update(images={"1": d["images"][0]}), "key 'images'"),
    (lambda d: d.update(annotations="none"), "key 'annotations'"),
    (lambda d: d["categories"][0].update(id="1"), "categories[0]"),
    (lambda d: d["annotations"][0].pop("bbox"), "annotations[0]"),
]


@pytest.mark.parametrize("case", range(len(MALFORMED_INSTANCES)))
def test_instances_malformed_one_line(tmp_path, case):
    rng = random.Random(case)
    data, *_ = coco_fuzz(rng, tmp_path)
    while len(data["annotations"]) < 5:
        data["annotations"].append({**data["annotations"][0], "id": len(data["annotations"])})
    edit, row = MALFORMED_INSTANCES[case]
    edit(data)
    path = tmp_path / "inst.json"
    path.write_text(json.dumps(data))
    with strict_rows():  # malformed rows are errors only when strict
        for read in (read_coco, read_lvis):
            with pytest.raises(AnnotationError) as exc:
                read(path, tmp_path)
            one_line_error(exc, path, row)


@pytest.mark.parametrize("seed", SEEDS)
def test_truncated_and_random_json(tmp_path, seed):
    rng = random.Random(seed)
    data, *_ = coco_fuzz(rng, tmp_path)
    text = json.dumps(data)
    path = tmp_path / "inst.json"
    path.write_text(text[: rng.randint(1, len(text) - 1)])
    with pytest.raises(AnnotationError) as exc:
        read_coco(path, tmp_path)
    one_line_error(exc, path, "line 1")
    path.write_text(json.dumps(rng.choice([[], 3, "x", None])))  # valid JSON, wrong type
    with pytest.raises(AnnotationError) as exc:
        read_coco(path, tmp_path)
    one_line_error(exc, path, "top level")
    missing = tmp_path / "nope" / "inst.json"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        read_coco(missing, tmp_path)


# ---------------------------------------------------------------- Visual Genome


def vg_fuzz(rng: random.Random, root: Path):
    want = Counter()
    sizes = {i: (rng.randint(30, 400), rng.randint(30, 400)) for i in range(1, rng.randint(4, 8))}
    image_data = [{"image_id": i, "width": w, "height": h, "url": f"http://x/VG_100K/{i}.jpg"}
                  for i, (w, h) in sizes.items()]  # fmt: skip
    objects, rels, regions = [], [], []
    n_obj = n_rel = n_reg = 0
    oid = 0
    for i, (w, h) in sizes.items():
        rows, alive = [], []
        for _ in range(rng.randint(2, 9)):
            oid += 1
            kind = rng.choice(BOX_FAULTS + ("noname",))
            x, y, bw, bh = fault_box(rng, kind if kind in REASON else "ok", w, h)
            row = {"object_id": oid, "x": x, "y": y, "w": bw, "h": bh, "names": ["thing"]}
            if kind == "noname":
                row["names"] = [" "]
                want["object_without_name"] += 1
            elif kind in REASON:
                want[REASON[kind]] += 1
            keep = kind in KEEP
            n_obj += keep
            rows.append(row)
            alive.append(keep)
        if rng.random() < 0.5:  # same id listed again with another box
            rows.append({**rows[0], "x": rows[0]["x"] + 1})
            want["duplicate_object_id"] += alive[0]
        objects.append({"image_id": i, "objects": rows})
        rel_rows = []
        for _ in range(rng.randint(0, 6)):
            a, b = rng.randrange(len(alive)), rng.randrange(len(alive))
            rel_rows.append({"predicate": "near", "subject": rows[a], "object": rows[b]})
            if alive[a] and alive[b]:
                n_rel += 1
            else:
                want["relation_endpoint_dropped"] += 1
        rels.append({"image_id": i, "relationships": rel_rows})
        reg_rows = []
        for r in range(rng.randint(0, 6)):
            kind = rng.choice(BOX_FAULTS + ("empty",))
            x, y, bw, bh = fault_box(rng, kind if kind in REASON else "ok", w, h)
            phrase = "  " if kind == "empty" else "a region"
            reg_rows.append({"region_id": r, "x": x, "y": y, "width": bw, "height": bh,
                             "phrase": phrase})  # fmt: skip
            if kind == "empty":
                want["empty_region_phrase"] += 1
            elif kind in REASON:
                want[REASON[kind]] += 1
            n_reg += kind in KEEP
        regions.append({"id": i, "regions": reg_rows})
    unknown = rng.randint(1, 3)  # entries of images image_data does not list
    for k in range(unknown):
        objects.append({"image_id": 900 + k, "objects": [{"object_id": 0, "x": 0, "y": 0}]})
    want["unknown_image"] += unknown
    files = {"image_data": image_data, "objects": objects, "relationships": rels}
    files["region_descriptions"] = regions
    for name, value in files.items():
        (root / f"{name}.json").write_text(json.dumps(value))
    return +want, (n_obj, n_rel, n_reg), len(sizes)


@pytest.mark.parametrize("seed", SEEDS)
def test_vg_exact_skips(tmp_path, seed):
    rng = random.Random(100 + seed)
    want, (n_obj, n_rel, n_reg), n_images = vg_fuzz(rng, tmp_path)
    present = [i for i in range(1, n_images + 1) if rng.random() < 0.6]
    for i in present:
        (tmp_path / "VG_100K").mkdir(exist_ok=True)
        (tmp_path / "VG_100K" / f"{i}.jpg").write_bytes(b"x")
    corpus = read_visual_genome(tmp_path, check_images=False)
    assert corpus.skips.as_dict() == dict(sorted(want.items()))
    c = corpus.counts()
    assert (c["images"], c["objects"], c["relations"], c["regions"]) == (
        n_images,
        n_obj,
        n_rel,
        n_reg,
    )
    checked = read_visual_genome(tmp_path, check_images=True)
    want["missing_image"] = n_images - len(present)
    assert checked.skips.as_dict() == dict(sorted((+want).items()))
    assert [s.image.id for s in checked.scenes] == present


MALFORMED_VG = [  # (file, edit, row named)
    ("objects", lambda d: d[1].update(objects="none"), "1"),
    ("objects", lambda d: d[0]["objects"].__setitem__(1, [1, 2]), "0 object 1"),
    ("objects", lambda d: d[0]["objects"][0].update(x="12"), "0 object 0"),
    ("objects", lambda d: d[1]["objects"][0].update(w=None), "1 object 0"),
    ("image_data", lambda d: d[2].update(width="800"), "2"),
    ("image_data", lambda d: d.__setitem__(0, [1]), "0"),
    ("relationships", lambda d: d[0]["relationships"].append({"predicate": "on"}), None),
    ("region_descriptions", lambda d: d[0]["regions"].append({"x": 1}), None),
]


@pytest.mark.parametrize("case", range(len(MALFORMED_VG)))
def test_vg_malformed_one_line(tmp_path, case):
    rng = random.Random(case)
    vg_fuzz(rng, tmp_path)
    name, edit, row = MALFORMED_VG[case]
    path = tmp_path / f"{name}.json"
    original = path.read_text()
    data = json.loads(original)
    edit(data)
    if row is None:  # the appended row
        key = "relationships" if name == "relationships" else "regions"
        row = f"0 {key[:-1] if name == 'relationships' else 'region'} {len(data[0][key]) - 1}"
    with strict_rows():  # malformed rows are errors only when strict
        path.write_text(json.dumps(data))
        with pytest.raises(AnnotationError) as exc:
            read_visual_genome(tmp_path, check_images=False)
        one_line_error(exc, path, row)
    path.write_text(original[:-3])  # truncated (the valid file)
    with pytest.raises(AnnotationError) as exc:
        read_visual_genome(tmp_path, check_images=False)
    one_line_error(exc, path, "line 1")


# ---------------------------------------------------------------- RefCOCO


@pytest.mark.parametrize("seed", SEEDS)
def test_refcoco_exact_skips(tmp_path, seed):
    rng = random.Random(200 + seed)
    want = Counter()
    folder = tmp_path / "refcoco"
    folder.mkdir()
    images, anns, refs = [], [], []
    objects = refs_kept = 0
    for i in range(1, rng.randint(3, 7)):
        w, h = rng.randint(30, 300), rng.randint(30, 300)
        images.append({"id": i, "width": w, "height": h, "file_name": f"{i}.jpg"})
        for _ in range(rng.randint(1, 5)):
            kind = rng.choice(BOX_FAULTS)
            aid = len(anns) + 1
            anns.append({"id": aid, "image_id": i, "category_id": 1,
                         "bbox": fault_box(rng, kind, w, h)})  # fmt: skip
            if kind in REASON:
                want[REASON[kind]] += 1
            objects += kind in KEEP
            ref = {"ref_id": aid, "ann_id": aid, "image_id": i, "split": "train",
                   "sentences": [{"sent": "the thing"}]}  # fmt: skip
            refs.append(ref)
            if kind in KEEP:
                refs_kept += 1
            else:
                want["ref_object_dropped"] += 1
    refs.append({**refs[0]})  # duplicate ref id
    want["duplicate_ref_id"] += 1
    refs.append({**refs[0], "ref_id": 5000, "ann_id": 777})  # unknown annotation
    want["ref_unknown_annotation"] += 1
    refs.append({**refs[0], "ref_id": 5001, "image_id": 999})  # image differs from its ann's
    want["ref_image_mismatch"] += 1
    anns.append({"id": 9000, "image_id": 555, "category_id": 1, "bbox": [0, 0, 1, 1]})
    want["unknown_image"] += 1
    anns.append({"id": 9001, "image_id": 1, "category_id": 42, "bbox": [0, 0, 1, 1]})
    want["unknown_category"] += 1
    inst = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    (folder / "instances.json").write_text(json.dumps(inst))
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs))
    corpus = read_refcoco(tmp_path, "refcoco", "unc", check_images=False)
    assert corpus.skips.as_dict() == dict(sorted(want.items()))
    c = corpus.counts()
    assert (c["images"], c["objects"], c["refs"]) == (len(images), objects, refs_kept)

    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs)[: rng.randint(1, 40)])
    with pytest.raises(AnnotationError) as exc:
        read_refcoco(tmp_path, "refcoco", "unc", check_images=False)
    one_line_error(exc, folder / "refs(unc).p", "-")
    (folder / "refs(unc).p").write_bytes(pickle.dumps({"refs": refs}))
    with pytest.raises(AnnotationError) as exc:
        read_refcoco(tmp_path, "refcoco", "unc", check_images=False)
    one_line_error(exc, folder / "refs(unc).p", "top level")
    with strict_rows():  # malformed rows are errors only when strict
        inst["annotations"][0]["bbox"] = None
        (folder / "instances.json").write_text(json.dumps(inst))
        with pytest.raises(AnnotationError) as exc:
            read_refcoco(tmp_path, "refcoco", "unc", check_images=False)
    one_line_error(exc, folder / "instances.json", "annotations[0]")


# ---------------------------------------------------------------- Dataset decoding


def write_corrupt(rng: random.Random, path: Path, kind: str) -> None:
    if kind == "jpeg_header":  # SOI + APP0 JFIF header, then garbage
        head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        path.write_bytes(head + rng.randbytes(rng.randint(0, 300)))
    elif kind == "truncated":  # a real JPEG cut in the middle of its data
        arr = np.random.default_rng(rng.randint(0, 99)).integers(0, 255, (32, 32, 3), np.uint8)
        Image.fromarray(arr).save(path, format="JPEG")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(rng.randbytes(rng.randint(0, 500)))


@pytest.mark.parametrize("seed", SEEDS)
def test_dataset_corrupt_and_missing_images(tmp_path, seed):
    rng = random.Random(300 + seed)
    samples, bad = [], Counter()
    good_paths = set()
    for i in range(rng.randint(6, 14)):
        kind = (
            "good"
            if i == 0
            else rng.choice(["good", "good", "missing", "jpeg_header", "random", "truncated"])
        )
        path = tmp_path / f"{i}.jpg"
        if kind == "good":
            Image.new("RGB", (rng.randint(8, 40), rng.randint(8, 40)), (i, 2 * i, 3)).save(path)
            good_paths.add(str(path))
        elif kind == "missing":
            bad["missing_image"] += 1
        else:
            write_corrupt(rng, path, kind)
            bad["corrupt_image"] += 1
        info = ImageInfo(i, str(path), 40, 30)
        for _ in range(rng.randint(1, 3)):  # several samples share an image
            samples.append(Sample("roc", info, "what is this?", "a thing"))
    ds = SampleDataset(samples, 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    for i in range(len(ds)):
        item = ds[i]
        assert item["sample"].image.path in good_paths
        assert item["image"].shape == (3, 16, 16) and torch.isfinite(item["image"]).all()
        reasons = {p: r for r, p in item["skipped"]}
        assert all(p not in good_paths for p in reasons)
    assert ds.skips.as_dict() == dict(sorted(bad.items()))  # each bad file counted once


# ---------------------------------------------------------------- CLI


def test_cli_malformed_file_is_one_line(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    data, *_ = coco_fuzz(random.Random(0), tmp_path)
    bad = root / "annotations" / "instances_train2017.json"
    bad.write_text(json.dumps(data)[:-10])  # truncated
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    proc = subprocess.run(
        [sys.executable, "-m", "scalar.data", "validate", "data=coco", f"data.root={root}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(bad) in lines[0] and "row line 1" in lines[0] and "not valid JSON" in lines[0]
