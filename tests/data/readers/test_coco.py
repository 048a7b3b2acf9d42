"""COCO instances reader: real sample against the raw JSON, bad rows, malformed files, masks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.ops import box_convert

from scalar.data.readers.coco import mask_to_array, read_coco
from scalar.data.readers.common import strict_rows
from scalar.data.scene import AnnotationError
from tests.paths import REALDATA

REAL = REALDATA / "coco"
ANN = REAL / "airo_instances_val2017_small.json"
IMAGES = REAL / "images"

real = pytest.mark.realdata


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(ANN.read_text())


@pytest.fixture(scope="module")
def corpus():
    return read_coco(ANN, "/nowhere", split="val", check_images=False)


def _objects(corpus) -> dict:
    return {o.id: (s, o) for s in corpus.scenes for o in s.objects}


@real
def test_counts_equal_raw(raw, corpus):
    assert len(corpus.scenes) == len(raw["images"]) == 3
    assert sum(len(s.objects) for s in corpus.scenes) == len(raw["annotations"]) == 34
    assert len(corpus.categories) == len(raw["categories"]) == 80
    assert not corpus.skips
    assert corpus.meta["format"] == "coco"
    assert [s.image.id for s in corpus.scenes] == sorted(r["id"] for r in raw["images"])
    assert all(s.split == "val" for s in corpus.scenes)


@real
def test_images_paths_and_sizes(raw, corpus):
    by_id = {s.image.id: s.image for s in corpus.scenes}
    for r in raw["images"]:
        info = by_id[r["id"]]
        assert info.path == str(Path("/nowhere") / r["file_name"])
        assert (info.width, info.height) == (r["width"], r["height"])


@real
def test_boxes_match_torchvision_conversion(raw, corpus):
    objs = _objects(corpus)
    xywh = torch.tensor([a["bbox"] for a in raw["annotations"]], dtype=torch.float64)
    ref = box_convert(xywh, "xywh", "xyxy")
    for a, expected in zip(raw["annotations"], ref.tolist()):
        scene, obj = objs[a["id"]]
        assert scene.image.id == a["image_id"]
        assert obj.box == pytest.approx(expected, abs=1e-9)


@real
def test_categories_crowd_and_masks(raw, corpus):
    cats = {c["id"]: c for c in raw["categories"]}
    ids = sorted(cats)
    assert ids[-1] > len(ids)  # the real ids have gaps (1..90 for 80 categories)
    assert [c.id for c in corpus.categories] == ids
    for c in corpus.categories:
        assert (c.name, c.supercategory) == (cats[c.id]["name"], cats[c.id]["supercategory"])
    objs = _objects(corpus)
    for a in raw["annotations"]:
        _, obj = objs[a["id"]]
        cat = cats[a["category_id"]]
        assert obj.category_id == a["category_id"]
        assert (obj.category, obj.supercategory) == (cat["name"], cat["supercategory"])
        assert obj.iscrowd == bool(a["iscrowd"])
        assert obj.mask == a["segmentation"]
    crowd = [o for _, o in objs.values() if o.iscrowd]
    assert [o.id for o in crowd] == [a["id"] for a in raw["annotations"] if a["iscrowd"]]
    assert isinstance(crowd[0].mask["counts"], list)


@real
def test_check_images_drops_missing(raw):
    corpus = read_coco(ANN, IMAGES, check_images=True)
    present = {r["id"] for r in raw["images"] if (IMAGES / r["file_name"]).is_file()}
    assert present == {397133}
    assert [s.image.id for s in corpus.scenes] == [397133]
    n_missing_anns = sum(a["image_id"] not in present for a in raw["annotations"])
    assert corpus.skips.counts["missing_image"] == 2
    assert corpus.skips.counts["annotations_of_missing_images"] == n_missing_anns == 15
    assert len(corpus.scenes[0].objects) == len(raw["annotations"]) - n_missing_anns


def _perimeter(poly: list[float]) -> float:
    xs, ys = poly[0::2], poly[1::2]
    n = len(xs)
    return sum(math.dist((xs[i], ys[i]), (xs[(i + 1) % n], ys[(i + 1) % n])) for i in range(n))


@real
def test_polygon_masks(raw):
    images = {r["id"]: r for r in raw["images"]}
    polys = [a for a in raw["annotations"] if not a["iscrowd"]]
    assert len(polys) == 33
    for a in polys:
        img = images[a["image_id"]]
        h, w = img["height"], img["width"]
        arr = mask_to_array(a["segmentation"], h, w)
        assert arr.dtype == bool and arr.shape == (h, w)
        rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w))
        assert int(arr.sum()) == int(mask_utils.area(rle))
        # rasterised area vs the stored polygon area: within half a pixel along the outline
        tol = 0.5 * sum(_perimeter(p) for p in a["segmentation"]) + 1
        assert abs(int(arr.sum()) - a["area"]) <= tol


def _decode_uncompressed(counts: list[int], h: int, w: int) -> np.ndarray:
    """Independent RLE decode: runs alternate 0 / 1 starting with 0, column-major."""
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    for i, n in enumerate(counts):
        if i % 2:
            flat[pos : pos + n] = True
        pos += n
    assert pos == h * w
    return flat.reshape(w, h).T


@real
def test_crowd_rle_mask(raw):
    a = next(a for a in raw["annotations"] if a["iscrowd"])
    h, w = a["segmentation"]["size"]
    arr = mask_to_array(a["segmentation"], h, w)
    ref = _decode_uncompressed(a["segmentation"]["counts"], h, w)
    assert np.array_equal(arr, ref)
    # The sample's 'area' field (18419) does not match its own RLE: the runs hold 12852
    # foreground pixels, which is what any decoder must give.
    assert int(arr.sum()) == sum(a["segmentation"]["counts"][1::2]) == 12852
    ys, xs = np.nonzero(arr)
    x, y, bw, bh = a["bbox"]
    assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
    assert abs(xs.max() + 1 - (x + bw)) <= 2 and abs(ys.max() + 1 - (y + bh)) <= 2
    # compressed forms (bytes and str counts, and re-encoded from the array) agree
    comp = mask_utils.frPyObjects(a["segmentation"], h, w)
    assert isinstance(comp["counts"], bytes)
    as_str = {"size": comp["size"], "counts": comp["counts"].decode("ascii")}
    encoded = mask_utils.encode(np.asfortranarray(ref.astype(np.uint8)))
    for m in (comp, as_str, encoded):
        assert np.array_equal(mask_to_array(m, h, w), ref)


def test_polygon_hand_worked():
    square = [2, 3, 6, 3, 6, 7, 2, 7]  # x 2..6, y 3..7
    arr = mask_to_array([square], 10, 10)
    expected = np.zeros((10, 10), dtype=bool)
    expected[3:7, 2:6] = True  # rows are y, columns are x
    assert np.array_equal(arr, expected)
    both = mask_to_array([square, [7, 0, 9, 0, 9, 2, 7, 2]], 10, 10)
    expected[0:2, 7:9] = True
    assert np.array_equal(both, expected)
    assert not mask_to_array([], 4, 5).any()


def test_mask_to_array_rejects_bad_masks():
    with pytest.raises(ValueError, match="RLE size"):
        mask_to_array({"size": [4, 4], "counts": [16]}, 5, 4)
    with pytest.raises(TypeError):
        mask_to_array("not a mask", 4, 4)


# ---- hand-made files -----------------------------------------------------------------


def _write(tmp_path: Path, data, name: str = "inst.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def _base() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "b.jpg", "width": 40, "height": 40},
            {"id": 1, "file_name": "dup.jpg", "width": 7, "height": 7},
        ],
        "categories": [
            {"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 5, "name": "car", "supercategory": "vehicle"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 5]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [200, 10, 10, 10]},
            {"id": 4, "image_id": 1, "category_id": 5, "bbox": [90.5, 40, 20, 20]},
            {"id": 5, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5]},
            {"id": 6, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 7, "image_id": 2, "category_id": 5, "bbox": [0, 0, 40, 40], "iscrowd": 1},
        ],
    }


def test_bad_rows_counted_once(tmp_path):
    corpus = read_coco(_write(tmp_path, _base()), tmp_path, check_images=False)
    assert corpus.skips.as_dict() == {
        "box_clipped": 1,
        "box_outside_image": 1,
        "degenerate_box": 1,
        "duplicate_annotation_id": 1,
        "duplicate_image_id": 1,
        "unknown_category": 1,
        "unknown_image": 1,
    }
    s1, s2 = corpus.scenes
    assert (s1.image.width, s1.image.path) == (100, str(tmp_path / "a.jpg"))  # first row wins
    assert [o.id for o in s1.objects] == [1, 4]
    assert s1.objects[0].box == (10.0, 10.0, 30.0, 30.0)
    assert s1.objects[1].box == (90.5, 40.0, 100.0, 50.0)  # clipped to the 100x50 image
    assert (s1.objects[1].category, s1.objects[1].category_id) == ("car", 5)
    assert [o.id for o in s2.objects] == [7] and s2.objects[0].iscrowd


def test_missing_images_counted_with_their_annotations(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    data = _base()
    data["images"].pop()
    corpus = read_coco(_write(tmp_path, data), tmp_path, check_images=True)
    assert [s.image.id for s in corpus.scenes] == [1]
    assert corpus.skips.counts["missing_image"] == 1
    # rows 5 and 7 point at image 2 (row 7 after the duplicate id row, which is counted first)
    assert corpus.skips.counts["annotations_of_missing_images"] == 2
    assert corpus.skips.counts["duplicate_annotation_id"] == 1


def test_invalid_masks_counted(tmp_path):
    data = _base()
    data["images"].pop()
    anns = data["annotations"] = data["annotations"][:1]
    anns[0]["segmentation"] = [[1, 1, 5, 1, 5, 5], [1, 2, 3], [1, 1, 2, 2]]
    anns.append(dict(anns[0], id=8, segmentation={"size": [3, 3], "counts": [9]}))
    anns.append(dict(anns[0], id=9, segmentation={"size": [50, 100], "counts": [5000]}))
    corpus = read_coco(_write(tmp_path, data), tmp_path, check_images=False)
    assert corpus.skips.as_dict() == {"invalid_polygon": 2, "invalid_mask": 1}
    o1, o8, o9 = corpus.scenes[0].objects
    assert o1.mask == [[1, 1, 5, 1, 5, 5]]
    assert o8.mask is None
    assert o9.mask == {"size": [50, 100], "counts": [5000]}


@pytest.mark.parametrize(
    "edit, row",
    [
        (lambda d: d["annotations"][2].pop("bbox"), "annotations[2]"),
        (lambda d: d["annotations"][4].pop("image_id"), "annotations[4]"),
        (lambda d: d["annotations"][3].pop("id"), "annotations[3]"),
        (lambda d: d["annotations"][1].update(bbox=[1, 2, 3]), "annotations[1]"),
        (lambda d: d["annotations"].__setitem__(6, "oops"), "annotations[6]"),
        (lambda d: d["images"][1].pop("file_name"), "images[1]"),
        (lambda d: d["images"][0].update(width=0), "images[0]"),
        (lambda d: d["categories"][1].pop("name"), "categories[1]"),
        (lambda d: d.pop("annotations"), "annotations"),
        (lambda d: d.update(images={}), "images"),
    ],
)
def test_malformed_rows_raise(tmp_path, edit, row):
    data = _base()
    edit(data)
    path = _write(tmp_path, data, "broken_inst.json")
    with strict_rows():  # malformed rows are errors only when strict
        with pytest.raises(AnnotationError) as e:
            read_coco(path, tmp_path, check_images=False)
    assert "broken_inst.json" in str(e.value)
    assert row in str(e.value)


def test_top_level_list_and_invalid_json(tmp_path):
    path = _write(tmp_path, [1, 2], "listy.json")
    with pytest.raises(AnnotationError, match=r"listy\.json: row top level"):
        read_coco(path, tmp_path)
    path = _write(tmp_path, '{"images": [', "cut.json")
    with pytest.raises(AnnotationError, match=r"cut\.json: row line 1"):
        read_coco(path, tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_file.json"):
        read_coco(tmp_path / "no_such_file.json", tmp_path)
