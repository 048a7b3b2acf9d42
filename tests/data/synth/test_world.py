"""The realistic synthetic world (difficulty presets): determinism, the flat world kept
byte for byte, read-back through the real readers, held-out categories, occlusion fields,
the vocabulary, degradations, and proposals that no longer find the objects."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from scalar.data.readers.coco import read_coco
from scalar.data.readers.refcoco import read_refcoco
from scalar.data.readers.vg import read_visual_genome
from scalar.data.synth import SynthConfig, build_synthetic
from scalar.data.synth.backgrounds import background, value_noise
from scalar.data.synth.degrade import degrade
from scalar.data.synth.presets import PRESETS, Degradation
from scalar.data.synth.shapes import rasterise
from scalar.rl.proposal_quality import best_proposal_ious, iou_xyxy, summary
from tests.data.synth.readback import read_back_coco_lvis

SPLITS = ("train", "val", "test", "heldout")
SMALL = dict(n_train=16, n_val=8, n_test=4, n_heldout=6, n_unlabeled=4)
# The flat builds whose files were hashed on main before the presets existed
# (flat_world_sha256.json): the flat world must still write exactly these bytes.
FLAT_BUILDS = {
    "plain": dict(seed=3, n_train=12, n_val=4, n_test=3, n_heldout=4, n_unlabeled=3),
    "textured": dict(seed=4, n_train=12, n_val=4, n_test=3, n_heldout=4, n_unlabeled=3,
                     texture=True, noise=0.02, overlap=0.2),
}  # fmt: skip


def _hashes(root: Path, prefix: str = "") -> dict[str, str]:
    return {
        prefix + p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module", params=["easy", "default", "hard"])
def world(request, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp(f"world_{request.param}")
    return out, build_synthetic(out, workers=1, seed=2, difficulty=request.param, **SMALL)


def _coco(root: Path, split: str) -> dict:
    return json.loads((root / f"coco/annotations/instances_{split}.json").read_text())


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    build_synthetic(a, workers=1, seed=5, difficulty="default", **SMALL)
    build_synthetic(b, workers=2, seed=5, difficulty="default", **SMALL)
    build_synthetic(c, workers=1, seed=6, difficulty="default", **SMALL)
    assert _hashes(a) == _hashes(b)
    ha, hc = _hashes(a), _hashes(c)
    assert ha.keys() == hc.keys() and ha["images/COCO_train2014_000000000001.png"] != hc[
        "images/COCO_train2014_000000000001.png"]  # fmt: skip


def test_flat_world_is_byte_identical_to_before(tmp_path):
    want = json.loads((Path(__file__).parent / "flat_world_sha256.json").read_text())
    got = {}
    for name, opts in FLAT_BUILDS.items():
        build_synthetic(tmp_path / name, workers=1, **opts)
        got.update(_hashes(tmp_path / name, f"{name}/"))
    assert got == want
    # the explicit flat difficulty is the same world
    build_synthetic(tmp_path / "explicit", workers=1, difficulty="flat", **FLAT_BUILDS["plain"])
    assert _hashes(tmp_path / "explicit", "plain/") == {
        k: v for k, v in want.items() if k.startswith("plain/")
    }


def test_every_reader_reads_every_preset(world):
    root, m = world
    counts = m["counts"]
    for split in SPLITS:
        read_back_coco_lvis(root, m, split)
    ref = read_refcoco(root / "refcoco", "synthetic", "unc", image_dir=root / "images",
                       image_pattern=m["refcoco"]["image_pattern"])  # fmt: skip
    assert not ref.skips, ref.skips.report()
    assert ref.counts()["objects"] == sum(counts[s]["objects"] for s in SPLITS)
    assert ref.counts()["refs"] == sum(counts[s]["refs"] for s in SPLITS)
    vg = read_visual_genome(root / "vg", image_dir=root / "images")
    assert not vg.skips, vg.skips.report()
    assert vg.counts()["relations"] == sum(counts[s]["relations"] for s in SPLITS)
    assert vg.counts()["regions"] == sum(counts[s]["regions"] for s in SPLITS)


def test_vocabulary_and_held_out_categories(world):
    root, m = world
    cats = m["categories"]
    assert len(cats) >= 16 and len({c["supercategory"] for c in cats}) >= 4
    assert all(len(c["hypernyms"]) >= 2 and c["hypernyms"][0] == c["supercategory"] for c in cats)
    held = set(m["held_out_categories"])
    assert len(held) == 3 and held == {c["name"] for c in cats if c["held_out"]}
    for split in SPLITS:
        data = _coco(root, split)
        names = {c["id"]: c["name"] for c in data["categories"]}
        per_image: dict[int, set] = {im["id"]: set() for im in data["images"]}
        for a in data["annotations"]:
            per_image[a["image_id"]].add(names[a["category_id"]])
        if split == "heldout":
            assert all(found & held for found in per_image.values())
        else:
            assert not any(found & held for found in per_image.values()), split
    assert not set(m["counts"]["train"]["by_category"]) & held


def test_occlusion_and_amodal_fields(world):
    root, m = world
    preset = PRESETS[m["difficulty"]]
    occluded = 0
    for split in SPLITS:
        for a in _coco(root, split)["annotations"]:
            x, y, w, h = a["bbox"]
            ax, ay, aw, ah = a["amodal_bbox"]
            assert ax <= x and ay <= y and x + w <= ax + aw and y + h <= ay + ah
            vf = a["visible_fraction"]
            assert preset.objects.min_visible - 1e-3 <= vf <= 1.0
            occluded += vf < 1
            visible = mask_utils.decode(a["segmentation"])
            ys, xs = np.nonzero(visible)
            assert (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) == (
                x, y, w, h)  # fmt: skip
            assert a["area"] == visible.sum()
            # the whole shape, rasterised again from its polygon: the visible part is in it
            height, width = visible.shape
            rows, cols, whole = rasterise(a["amodal_segmentation"][0], width, height)
            full = np.zeros_like(visible, dtype=bool)
            full[rows, cols] = whole
            assert not (visible.astype(bool) & ~full).any()
            assert round(visible.sum() / full.sum(), 4) == vf
    assert occluded > 0
    assert sum(m["counts"][s]["occluded_objects"] for s in SPLITS) == occluded


def test_proposals_find_little_in_the_default_world(tmp_path):
    def mean_iou(difficulty: str) -> dict:
        root = tmp_path / difficulty
        build_synthetic(root, workers=1, seed=9, difficulty=difficulty, n_train=0, n_val=50,
                        n_test=0, n_heldout=0, n_unlabeled=0)  # fmt: skip
        val = read_coco(root / "coco/annotations/instances_val.json", root / "images", "val")
        return summary(best_proposal_ious(val.scenes))

    flat, default = mean_iou("flat"), mean_iou("default")
    assert flat["mean_best_iou"] > 0.95 and flat["share_iou_ge_0_5"] == 1.0
    assert default["objects"] > 150
    assert default["mean_best_iou"] <= 0.3


def test_iou_hand_cases():
    assert iou_xyxy((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(2 / 6)
    assert iou_xyxy((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert summary([1.0, 0.5, 0.0, 0.1]) == {
        "objects": 4, "mean_best_iou": 0.4, "share_iou_ge_0_5": 0.5}  # fmt: skip


def test_backgrounds_are_textured_and_degradations_apply():
    rng = np.random.default_rng(0)
    t = value_noise(rng, 64, 64)
    assert t.min() == 0.0 and t.max() == 1.0
    for _ in range(20):  # no flat-colour background in the default world
        bg = background(rng, 64, PRESETS["default"])
        assert bg.std(axis=(0, 1)).max() > 8.0
    img = rng.uniform(0, 255, (32, 32, 3)).round()
    none = Degradation(gain=(1, 1), gamma=(1, 1), contrast=(1, 1), blur=(0, 0), noise=(0, 0),
                       jpeg=(0, 0))  # fmt: skip
    same = dataclasses.replace(PRESETS["default"], degradation=none)
    assert np.array_equal(degrade(rng, img, same), img.astype(np.uint8))
    blurred = degrade(rng, img, PRESETS["hard"])
    assert blurred.astype(float).std() < img.std()  # blur (and JPEG) smooth the noise


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="difficulty must be one of"):
        build_synthetic(tmp_path, difficulty="medium")
    with pytest.raises(ValueError, match="flat-world options"):
        build_synthetic(tmp_path, difficulty="default", noise=0.1)
    with pytest.raises(ValueError, match="unknown categories"):
        build_synthetic(tmp_path, difficulty="default", categories=("circle", "blob"))
    cfg = SynthConfig(difficulty="hard")
    assert (cfg.min_objects, cfg.max_objects, cfg.texture) == (4, 10, True)
    assert SynthConfig().as_dict()["held_out_categories"] == ["hexagon", "heart"]
