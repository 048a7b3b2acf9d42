"""The depth-estimation hook end to end on a tiny random-init DPT saved with save_pretrained
(nothing downloaded): depth at the image's size, lifted objects, the spatial-QA export with
the data's intrinsics and with an assumed field of view."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from scalar.data.depth_model import DepthModel
from scalar.data.lift3d import object_mask
from scalar.data.readers.refcoco import read_refcoco
from scalar.data.spatial_export import Lifter, export
from scalar.data.synth import build_synthetic
from scalar.metrics.spatial_baselines import split_baselines

SMALL = dict(n_train=3, n_val=2, n_test=0, n_heldout=0, n_unlabeled=0, image_size=64)


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    path = tmp_path_factory.mktemp("dpt")
    torch.manual_seed(0)
    cfg = DPTConfig(image_size=32, patch_size=16, hidden_size=32, num_hidden_layers=4,
                    num_attention_heads=4, intermediate_size=37, backbone_out_indices=[0, 1, 2, 3],
                    neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16, head_hidden_size=8,
                    reassemble_factors=[4, 2, 1, 0.5])  # fmt: skip
    DPTForDepthEstimation(cfg).save_pretrained(path)
    DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def _corpus(root, geometry):
    build_synthetic(root, workers=1, seed=1, difficulty="easy", geometry=geometry, **SMALL)
    return {s: read_refcoco(root / "refcoco", "synthetic", "unc", [s], root / "images",
                            "COCO_train2014_{image_id:012d}.png") for s in ("train", "val")}  # fmt: skip


def test_depth_model_predicts_at_the_image_size(tiny_dpt):
    model = DepthModel(tiny_dpt, scale=1e9)
    rgb = np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    depth = model(rgb)
    assert depth.shape == (48, 40) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth >= 0).all() and depth.std() > 0
    assert np.allclose(model(Image.fromarray(rgb)), depth)  # PIL and array inputs agree
    assert model.describe() == {"model": str(tiny_dpt), "type": "dpt", "scale": 1e9}
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        DepthModel(tiny_dpt / "absent")


def test_export_lifts_with_the_model(tiny_dpt, tmp_path):
    corpora = _corpus(tmp_path / "g", "ground_plane")
    lifter = Lifter("model", str(tiny_dpt), fov=60.0, scale=1e9, device="cpu")
    summary = export(corpora, lifter, tmp_path / "qa.jsonl", max_pairs=4)
    rows = [json.loads(line) for line in (tmp_path / "qa.jsonl").read_text().splitlines()]
    assert len(rows) == sum(summary["total"].values()) > 0
    assert {r["geometry"] for r in rows} == {"model"}
    assert summary["lifting"] == {"intrinsics: data": 5}
    assert summary["depth_model"]["type"] == "dpt" and "lifting_centre_error" in summary
    # a lifted object's distance from the camera lies within the model's depth on its mask
    scene = corpora["val"].scenes[0]
    with Image.open(scene.image.path) as im:
        depth = lifter.model(im)
    lifted, _ = lifter(scene)
    for o in scene.objects:
        if o.id in lifted["objects"]:
            m, _ = object_mask(o, 64, 64)
            z = lifted["objects"][o.id]["center"][2]
            assert depth[m].min() - 1e-4 <= z <= depth[m].max() + 1e-4


def test_export_without_intrinsics_states_the_fov(tiny_dpt, tmp_path):
    corpora = _corpus(tmp_path / "p", "planar")  # planar: no intrinsics, no 3-D record
    lifter = Lifter("auto", str(tiny_dpt), fov=55.0, scale=1e9, device="cpu")
    summary = export(corpora, lifter, tmp_path / "qa.jsonl", max_pairs=4, baselines=split_baselines)
    assert summary["lifting"] == {"intrinsics: assumed horizontal field of view 55 degrees": 5}
    assert "baselines" in summary and "val" in summary["baselines"]
    with pytest.raises(ValueError, match="needs depth="):
        Lifter("model", None, 60.0, 1.0, "cpu")
    none = export(corpora, Lifter("record", None, 60.0, 1.0, "cpu"), tmp_path / "r.jsonl", 4)
    assert none["total"] == {} and none["scenes"] == {"train: none": 3, "val: none": 2}
