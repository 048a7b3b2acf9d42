"""Scenes of the ground-plane world (``SynthConfig.geometry = "ground_plane"``).

Objects are upright cut-outs of metric size standing on a ground plane in front of a level
pinhole camera (``camera.py``): each is a thin panel facing the camera whose outline is its
category's shape, ``width`` metres wide (small or large, ``GroundWorld``), ``width *
aspect`` tall and ``THICKNESS_M`` deep, its front face ``z`` metres from the camera and its
bottom on the ground. Perspective projection makes far objects small and high in the image;
objects are painted far to near, so nearer ones occlude farther ones (list order is paint
order, as in ``world.py``). Below the horizon the background is the ground (shaded a little
darker); its depth is exact in the depth map.

Each object records, besides the fields of ``world.place`` (``box``, ``amodal_box``,
``visible_fraction``, visible RLE ``segmentation``, ``area``, amodal ``polygon``), its
``center_3d`` (metres, camera frame) and ``size_3d`` (width, height, depth in metres).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pycocotools import mask as mask_utils

from scalar.data.synth.backgrounds import background
from scalar.data.synth.camera import Camera, ground_depth
from scalar.data.synth.degrade import degrade
from scalar.data.synth.presets import Preset
from scalar.data.synth.shapes import SIZES, rasterise
from scalar.data.synth.taxonomy import CATEGORY_BY_NAME, world_polygon
from scalar.data.synth.world import _fill, place_with_restarts

THICKNESS_M = 0.02  # depth of a cut-out panel
PLACE_TRIES = 40  # positions tried per object before the scene is drawn again
MIN_PIXELS = 6  # fewest visible pixels of an object
GROUND_SHADE = 0.85  # the ground (below the horizon) is this much darker than the backdrop


@dataclass(frozen=True)
class GroundWorld:
    """The camera and the metric ranges of the ground-plane world."""

    fov_deg: float = 60.0  # horizontal field of view
    camera_height: float = 1.5  # metres above the ground
    depth: tuple[float, float] = (3.0, 10.0)  # distance of an object's front face, metres
    small: tuple[float, float] = (0.3, 0.6)  # width of a small object, metres
    large: tuple[float, float] = (0.8, 1.4)  # width of a large object, metres

    def camera(self, size: int) -> Camera:
        return Camera.from_fov(size, size, self.fov_deg, self.camera_height)

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()} | {
            "thickness": THICKNESS_M
        }


GROUND = GroundWorld()


def panel(cat: str, width: float, x: float, z: float, cam: Camera) -> dict:
    """A cut-out of ``cat``, ``width`` metres wide, centred at ``x`` with its front face at
    depth ``z``, standing on the ground: its 3-D record and its image polygon."""
    height = width * CATEGORY_BY_NAME[cat].aspect
    u0, v0 = cam.project(x - width / 2, cam.height - height, z)
    poly = world_polygon(cat, cam.fx * width / z, cam.fy * height / z, 0.0, u0, v0)
    centre = [x, cam.height - height / 2, z + THICKNESS_M / 2]
    return {"polygon": poly, "z": z, "center_3d": [round(v, 4) for v in centre],
            "size_3d": [round(width, 4), round(height, 4), THICKNESS_M]}  # fmt: skip


def _draw(rng, cat: str, size: str, cam: Camera, s: int, world: GroundWorld) -> dict | None:
    lo, hi = world.small if size == "small" else world.large
    width = rng.uniform(lo, hi)
    z = rng.uniform(*world.depth)
    half = width / 2
    x_lo = (1 - cam.cx) * z / cam.fx + half  # keep the panel one pixel inside the image
    x_hi = (s - 1 - cam.cx) * z / cam.fx - half
    if x_hi <= x_lo:
        return None
    p = panel(cat, width, rng.uniform(x_lo, x_hi), z, cam)
    ys = p["polygon"][1::2]
    return p if min(ys) >= 1 and max(ys) <= s - 1 else None


def owners(polys: list[list[float]], depths: list[float], s: int) -> tuple[np.ndarray, list]:
    """Owner map (index of the nearest object per pixel, -1: none) and each object's full
    pixel count, painting far to near."""
    owner = np.full((s, s), -1, dtype=np.int32)
    full = [0] * len(polys)
    for k in sorted(range(len(polys)), key=lambda k: -depths[k]):
        rows, cols, m = rasterise(polys[k], s, s)
        owner[rows, cols][m] = k
        full[k] = int(m.sum())
    return owner, full


def place3d(rng, looks, cfg, preset: Preset, cam: Camera, world: GroundWorld) -> list | None:
    """Objects in paint order (far to near) with their visible masks, or None when some
    object found no position where every object keeps ``preset.objects.min_visible``."""
    s = cfg.image_size
    placed: list[dict] = []
    for colour, cat, pattern in looks:
        size = SIZES[int(rng.integers(len(SIZES)))]
        for _ in range(PLACE_TRIES):
            p = _draw(rng, cat, size, cam, s, world)
            if p is None:
                continue
            trial = [*placed, p]
            owner, full = owners([o["polygon"] for o in trial], [o["z"] for o in trial], s)
            vis = np.bincount(owner.ravel() + 1, minlength=len(trial) + 1)[1:]
            if all(
                v >= MIN_PIXELS and v >= preset.objects.min_visible * f
                for v, f in zip(vis, full, strict=True)
            ):
                placed.append({**p, "category": cat, "colour": colour, "size": size,
                               "texture": pattern})  # fmt: skip
                break
        else:
            return None
    order = sorted(range(len(placed)), key=lambda k: -placed[k]["z"])
    objs = [placed[k] for k in order]
    owner, full = owners([o["polygon"] for o in objs], [o["z"] for o in objs], s)
    for k, o in enumerate(objs):
        mask = owner == k
        ys, xs = np.nonzero(mask)
        fr, fc, fm = rasterise(o["polygon"], s, s)
        fy, fx = np.nonzero(fm)
        o["amodal_box"] = (fc.start + int(fx.min()), fr.start + int(fy.min()),
                           int(np.ptp(fx)) + 1, int(np.ptp(fy)) + 1)  # fmt: skip
        o["box"] = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
        o["visible_fraction"] = round(len(xs) / full[k], 4)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        o["segmentation"] = {"size": [s, s], "counts": rle["counts"].decode("ascii")}
        o["area"] = float(len(xs))
        o["angle"] = 0.0
    return [objs, owner]


def ground_scene(rng, cfg, preset: Preset, categories, must_include=(), world=GROUND) -> tuple:
    """Objects, the rendered ``uint8`` image, the ``float32`` depth map (metres) and the
    camera of one ground-plane scene."""
    s = cfg.image_size
    cam = world.camera(s)
    objs, owner = place_with_restarts(
        rng, cfg, preset, categories, must_include,
        lambda looks: place3d(rng, looks, cfg, preset, cam, world), "ground-plane scene",
    )  # fmt: skip
    img = background(rng, s, preset)
    horizon = int(np.ceil(cam.cy - 0.5))  # first row whose centre is below the horizon
    img[horizon:] *= GROUND_SHADE
    depth = ground_depth(cam, s, s)
    for k, o in enumerate(objs):
        rows, cols, m = rasterise(o["polygon"], s, s)
        img[rows, cols][m] = _fill(rng, o, rows, cols, m, preset)
        depth[owner == k] = o["z"]
    for o in objs:
        del o["angle"], o["z"]
    return objs, degrade(rng, img, preset), depth, cam
