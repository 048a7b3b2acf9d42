"""The metric 3-D QA templates against hand-worked scenes: a known camera and two panels at
known depths give known distances, sizes and orderings; "fits" with a known gap."""

from __future__ import annotations

import random

import pytest

from scalar.data.scene import ImageInfo, Object, Scene
from scalar.data.synth.camera import Camera
from scalar.data.synth.scene3d import panel
from scalar.data.tasks import TaskBuilder
from scalar.data.tasks_spatial3d import SPATIAL3D_PROMPTS, spatial3d_samples

CAM = Camera.from_fov(100, 100, 90.0, 1.5)  # f = 50 px, camera 1.5 m above the ground


def _scene(panels: dict) -> Scene:
    """Objects (ids 1..) of ``{category: (width, x, z)}`` with boxes from the projection."""
    objs, geo = [], {"intrinsics": {"fx": 50.0, "fy": 50.0, "cx": 50.0, "cy": 50.0},
                     "objects": {}}  # fmt: skip
    for i, (cat, (w, x, z)) in enumerate(panels.items(), start=1):
        p = panel(cat, w, x, z, CAM)
        xs, ys = p["polygon"][0::2], p["polygon"][1::2]
        objs.append(Object(i, cat, (min(xs), min(ys), max(xs), max(ys))))
        geo["objects"][i] = {"center": p["center_3d"], "size": p["size_3d"]}
    return Scene(ImageInfo(7, "x.png", 100, 100), objs, split="val", meta={"geometry": geo})


# A: a 1 m square, centre x = -1, front 4 m away; B: a 0.4 m circle at x = 1, front 8 m away.
# Centres (thickness 0.02): A (-1, 1.0, 4.01), B (1, 1.3, 8.01).
TWO = {"square": (1.0, -1.0, 4.0), "circle": (0.4, 1.0, 8.0)}
HAND = {
    ("distance_3d", (1, 2)): "4.48 metres",  # sqrt(2^2 + 0.3^2 + 4^2) = 4.4822
    ("distance_3d", (2, 1)): "4.48 metres",
    ("depth_camera", (1,)): "4.25 metres",  # sqrt(1 + 1 + 4.01^2) = 4.2521
    ("depth_camera", (2,)): "8.18 metres",  # sqrt(1 + 1.69 + 8.01^2) = sqrt(66.8501) = 8.1762
    ("width_3d", (1,)): "1.00 metres", ("height_3d", (1,)): "1.00 metres",
    ("width_3d", (2,)): "0.40 metres", ("height_3d", (2,)): "0.40 metres",
    ("closer_camera", (1, 2)): "the square", ("closer_camera", (2, 1)): "the square",
    ("farther_camera", (1, 2)): "the circle", ("farther_camera", (2, 1)): "the circle",
    ("left_3d", (1, 2)): "yes", ("left_3d", (2, 1)): "no",
    ("right_3d", (1, 2)): "no", ("right_3d", (2, 1)): "yes",
    # heights of the centres above the ground: A 0.5 m, B 0.2 m (gap 0.3 >= 0.25 * 1 m)
    ("above_3d", (1, 2)): "yes", ("above_3d", (2, 1)): "no",
    ("below_3d", (1, 2)): "no", ("below_3d", (2, 1)): "yes",
    ("bigger_3d", (1, 2)): "the square", ("bigger_3d", (2, 1)): "the square",
    ("smaller_3d", (1, 2)): "the circle", ("smaller_3d", (2, 1)): "the circle",
    ("count", (1,)): "1", ("count", (2,)): "1",
}  # fmt: skip


def test_two_panels_give_the_hand_worked_answers():
    scene = _scene(TWO)
    seen = set()
    for seed in range(30):  # every phrasing and question choice over a few seeds
        for s in spatial3d_samples(scene, random.Random(seed), {}, max_pairs=6):
            key = (s.meta["question_type"], tuple(s.meta["object_ids"]))
            assert s.target == HAND[key], (key, s.prompt)
            assert s.prompt in {t.format(a=n1, b=n2, things=n1 + "s") for t in
                                SPATIAL3D_PROMPTS[key[0]] for n1 in ("square", "circle")
                                for n2 in ("square", "circle")}  # fmt: skip
            if s.meta["answer_type"] == "quantitative" and key[0] != "count":
                assert s.meta["unit"] == "m" and s.target == f"{s.meta['value']:.2f} metres"
            seen.add(key)
    assert seen == set(HAND)  # every template was asked


def test_fits_between_uses_the_gap():
    # A and B 4 m apart (centres), each 1 m wide: a 3 m gap; X 0.5 m fits, Y 3.6 m does not
    scene = _scene({"square": (1.0, -2.0, 5.0), "triangle": (1.0, 2.0, 5.0),
                    "circle": (0.5, 0.0, 9.0), "rectangle": (3.6, 0.0, 9.5)})  # fmt: skip
    fits = {}
    for seed in range(60):
        for s in spatial3d_samples(scene, random.Random(seed), {}, max_pairs=12):
            if s.meta["question_type"] == "fits" and set(s.meta["object_ids"][1:]) == {1, 2}:
                fits[s.meta["object_ids"][0]] = s.target
    assert fits == {3: "yes", 4: "no"}


def test_task_builder_switches_on_geometry():
    three_d = TaskBuilder(["spatial_qa"]).build(_scene(TWO))
    assert three_d and all(s.meta["question_type"] in SPATIAL3D_PROMPTS for s in three_d)
    flat = _scene(TWO)
    flat.meta = {}
    two_d = TaskBuilder(["spatial_qa"]).build(flat)
    assert {s.meta["question_type"] for s in two_d} & {"distance", "width", "height"}
    assert not {s.meta["question_type"] for s in two_d} & set(SPATIAL3D_PROMPTS) - {"count"}


def test_prompts_have_varied_phrasings():
    assert all(len(v) >= 2 for k, v in SPATIAL3D_PROMPTS.items() if k != "count")
    with pytest.raises(KeyError):
        SPATIAL3D_PROMPTS["distance"]  # the 2-D names stay 2-D
