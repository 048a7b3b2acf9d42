"""The ground-plane world: the pinhole camera and panels against hand-worked numbers, the
16-bit depth maps, read-back of the 3-D record through the readers, lifting the rendered
depth maps back to the recorded centres, and the option's validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scalar.core.errors import UserError
from scalar.data.lift3d import centre_errors, lift_scene
from scalar.data.prepare import ensure_synthetic
from scalar.data.readers.coco import read_coco
from scalar.data.readers.refcoco import read_refcoco
from scalar.data.synth import build_synthetic
from scalar.data.synth.camera import (
    Camera,
    encode_depth_png,
    ground_depth,
    load_depth_png,
    save_depth_png,
)
from scalar.data.synth.scene3d import THICKNESS_M, panel
from scalar.data.tasks import TaskBuilder

SMALL = dict(n_train=8, n_val=4, n_test=2, n_heldout=3, n_unlabeled=2, difficulty="default")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ground")
    build_synthetic(out, workers=1, seed=2, geometry="ground_plane", **SMALL)
    return out


def _refcoco(root: Path, splits=None):
    return read_refcoco(root / "refcoco", "synthetic", "unc", splits, root / "images",
                        "COCO_train2014_{image_id:012d}.png")  # fmt: skip


def test_camera_and_panel_by_hand():
    cam = Camera.from_fov(100, 100, 90.0, 1.5)  # f = 50 / tan(45 deg) = 50
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx((50, 50, 50, 50))
    assert cam.project(1.0, 1.5, 5.0) == pytest.approx((60.0, 65.0))
    # a 1 m square at x = -1 with its front 4 m away: 12.5 px wide, bottom on the ground
    p = panel("square", 1.0, -1.0, 4.0, cam)
    xs, ys = p["polygon"][0::2], p["polygon"][1::2]
    assert (min(xs), max(xs)) == pytest.approx((31.25, 43.75), abs=0.01)
    assert (min(ys), max(ys)) == pytest.approx((56.25, 68.75), abs=0.01)
    assert max(ys) == pytest.approx(cam.project(0, 1.5, 4.0)[1], abs=0.01)  # ground contact
    assert p["center_3d"] == pytest.approx([-1.0, 1.0, 4.0 + THICKNESS_M / 2])
    assert p["size_3d"] == pytest.approx([1.0, 1.0, THICKNESS_M])


def test_ground_depth_and_depth_png(tmp_path):
    cam = Camera.from_fov(100, 100, 90.0, 1.5)
    d = ground_depth(cam, 100, 100)
    assert d[75, 3] == pytest.approx(50 * 1.5 / 25.5, rel=1e-6)  # row centre 75.5
    assert (d[:50] == 0).all() and (d[50] == 0).all()  # row 50's centre: 0.5 px, 150 m away
    rng = np.random.default_rng(0)
    depth = rng.uniform(0, 40, (7, 5)).astype(np.float32)
    save_depth_png(depth, tmp_path / "d.png")
    back = load_depth_png(tmp_path / "d.png")
    assert back.shape == (7, 5) and np.abs(back - depth).max() <= 0.0005 + 1e-6
    with pytest.raises(ValueError, match="2-D"):
        encode_depth_png(np.zeros((2, 2, 3)))


def test_readers_carry_the_3d_record(world):
    inst = json.loads((world / "coco/annotations/instances_val.json").read_text())
    row = inst["images"][0]
    assert set(row["intrinsics"]) == {"fx", "fy", "cx", "cy"} and row["camera_height"] == 1.5
    assert (world / "images" / row["depth_file"]).is_file()
    amodal = {a["id"]: a["amodal_bbox"] for a in inst["annotations"]}
    coco = read_coco(world / "coco/annotations/instances_val.json", world / "images", "val")
    for corpus in (_refcoco(world, ["val"]), coco):
        assert not corpus.skips.as_dict().get("invalid_geometry")
        assert len(corpus.scenes) == 4
        for scene in corpus.scenes:
            geo = scene.meta["geometry"]
            assert set(geo["objects"]) == {o.id for o in scene.objects}
            cam = Camera(**geo["intrinsics"], height=geo["camera_height"])
            depth = load_depth_png(geo["depth_file"])
            for o in scene.objects:
                c = geo["objects"][o.id]["center"]
                front = c[2] - THICKNESS_M / 2
                u, v = cam.project(c[0], c[1], front)
                x, y, w, h = amodal[o.id]  # the centre projects into the amodal box
                assert x - 1 <= u <= x + w + 1 and y - 1 <= v <= y + h + 1
                x1, y1, x2, y2 = (int(b) for b in o.box)
                assert np.isclose(depth[y1:y2, x1:x2], front, atol=0.001).any()
    assert not list((world / "unlabeled").glob("*depth*"))  # the pool's folder is scanned


def test_lifting_the_rendered_depth_recovers_the_centres(world):
    errs, heights = [], []
    for scene in _refcoco(world).scenes:
        geo = scene.meta["geometry"]
        lifted = lift_scene(load_depth_png(geo["depth_file"]), geo["intrinsics"], scene.objects)
        errs += centre_errors(lifted, geo)
        heights.append(lifted["camera_height"])
        assert lifted["ground"]["normal"] == pytest.approx([0, -1, 0], abs=0.02)
    assert len(errs) >= 40
    assert float(np.median(errs)) <= 0.05
    assert np.median(heights) == pytest.approx(1.5, rel=0.02)


def test_spatial_qa_uses_the_3d_templates(world):
    scenes = _refcoco(world, ["train"]).scenes
    samples = TaskBuilder(["spatial_qa"]).build_all(scenes)
    types = {s.meta["question_type"] for s in samples}
    assert {"distance_3d", "depth_camera", "count"} <= types
    assert types & {"closer_camera", "farther_camera"} and types & {"left_3d", "right_3d"}
    assert not types & {"distance", "width", "height", "left"}  # no 2-D pixel templates
    for s in samples:
        if s.meta["question_type"] == "depth_camera":
            geo = next(sc for sc in scenes if sc.image.id == s.meta["image_id"]).meta["geometry"]
            c = geo["objects"][s.meta["object_ids"][0]]["center"]
            assert s.target == f"{math.hypot(*c):.2f} metres"


def test_planar_manifest_unchanged_and_bad_geometry(tmp_path):
    m = build_synthetic(tmp_path / "p", workers=1, seed=0, **{**SMALL, "n_train": 2})
    assert "geometry" not in m["options"] and "ground_plane" not in m
    with pytest.raises(UserError, match="geometry=planar corpus but geometry=ground_plane"):
        ensure_synthetic(tmp_path / "p", {"difficulty": "default", "geometry": "ground_plane"})
    # a corpus built with other knobs than today's preset is refused, not mixed in
    ensure_synthetic(tmp_path / "p", {"difficulty": "default"})  # today's: accepted
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    manifest["preset"]["max_objects"] += 1
    (tmp_path / "p" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="older difficulty=default preset"):
        ensure_synthetic(tmp_path / "p", {"difficulty": "default"})
    with pytest.raises(ValueError, match="needs a difficulty preset"):
        build_synthetic(tmp_path / "f", geometry="ground_plane", n_train=1)
    with pytest.raises(ValueError, match="geometry must be one of"):
        build_synthetic(tmp_path / "u", geometry="sphere", difficulty="easy", n_train=1)
