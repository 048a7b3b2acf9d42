"""Lifting with a depth map against hand-worked cases: back-projection, outlier removal,
robust centre and extent, mask and box lifting, the RANSAC ground plane, FOV intrinsics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from scalar.data.lift3d import (
    backproject,
    centre_errors,
    fit_ground_plane,
    intrinsics_from_fov,
    lift_scene,
    robust_box,
)
from scalar.data.scene import Object
from scalar.data.synth.camera import Camera, ground_depth

K = {"fx": 50.0, "fy": 50.0, "cx": 50.0, "cy": 50.0}  # a 100 x 100 image, 90 degree FOV


def test_intrinsics_from_fov():
    assert intrinsics_from_fov(100, 80, 90.0) == pytest.approx(
        {"fx": 50.0, "fy": 50.0, "cx": 50.0, "cy": 40.0})  # fmt: skip
    with pytest.raises(ValueError, match="field of view"):
        intrinsics_from_fov(100, 100, 180)


def test_backproject_by_hand():
    depth = np.zeros((100, 100), np.float32)
    depth[60, 70] = 4.0  # pixel centre (70.5, 60.5): x = 20.5 * 4 / 50, y = 10.5 * 4 / 50
    mask = np.ones((100, 100), bool)
    pts = backproject(depth, K, mask)
    assert pts.shape == (1, 3) and pts[0].tolist() == pytest.approx([1.64, 0.84, 4.0])


def _square_scene():
    """A 1 m x 0.5 m panel 4 m away, seen through a 25 x 12.5 px window with the ground
    (20 m) showing through two of its pixels, two objects (mask and box)."""
    depth = np.full((100, 100), 20.0, np.float32)
    # panel: x in [-0.5, 0.5], y in [0, 0.5] at z = 4 -> u in [43.75, 56.25], v in [50, 56.25]
    depth[50:56, 44:56] = 4.0
    depth[52, 47] = depth[53, 50] = 20.0  # holes: the background behind
    mask = np.zeros((100, 100), bool)
    mask[50:56, 44:56] = True
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    depth[20:30, 10:20] = 8.0  # a second panel, given by its box only
    objs = [Object(1, "square", (44.0, 50.0, 56.0, 56.0), mask=rle),
            Object(2, "circle", (10.0, 20.0, 20.0, 30.0))]  # fmt: skip
    return depth, objs


def test_robust_box_removes_the_background_and_finds_the_panel():
    depth, objs = _square_scene()
    lifted = lift_scene(depth, K, objs)
    a = lifted["objects"][1]
    assert a["from"] == "mask" and a["n_points"] == 6 * 12 - 2  # the two holes removed
    # pixel centres 44.5 .. 55.5 and 50.5 .. 55.5, one pixel's footprint (0.08 m) added
    assert a["center"] == pytest.approx([0.0, 0.24, 4.0], abs=0.005)
    assert a["size"][:2] == pytest.approx([12 * 0.08, 6 * 0.08], abs=0.02)
    b = lifted["objects"][2]
    assert b["from"] == "box"
    x = (15.0 - 50.0) * 8.0 / 50.0  # the box's middle column, 8 m away
    assert b["center"] == pytest.approx([x, (25.0 - 50.0) * 8.0 / 50.0, 8.0], abs=0.01)
    truth = {"objects": {1: {"center": [0.0, 0.25, 4.0]}, 2: {"center": [x, -4.0, 8.0]}}}
    errs = centre_errors(lifted, truth)
    assert len(errs) == 2 and max(errs) < 0.01


def test_too_few_points_are_not_lifted():
    depth = np.zeros((10, 10), np.float32)
    depth[0, :3] = 2.0
    assert robust_box(backproject(depth, K, np.ones((10, 10), bool))) is None


def test_ground_plane_of_a_level_camera_and_a_tilted_one():
    cam = Camera.from_fov(100, 100, 90.0, 1.5)
    depth = ground_depth(cam, 100, 100)
    pts = backproject(depth, K, np.ones((100, 100), bool))
    plane = fit_ground_plane(pts)
    assert plane["normal"] == pytest.approx([0, -1, 0], abs=1e-3)
    assert plane["camera_height"] == pytest.approx(1.5, rel=1e-3)
    # the same ground seen by a camera pitched down by 10 degrees: the normal turns with it
    t = math.radians(10)
    rot = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    rng = np.random.default_rng(1)
    tilted = pts @ rot.T + rng.normal(0, 0.005, pts.shape)
    plane = fit_ground_plane(np.concatenate([tilted, rng.uniform(-5, 5, (300, 3))]))
    assert plane["normal"] == pytest.approx(-rot[:, 1], abs=0.01)
    assert plane["camera_height"] == pytest.approx(1.5, rel=0.01)
    assert fit_ground_plane(pts[:2]) is None
