"""Scenes of the realistic world: textured, shaded, rotated objects on procedural
backgrounds, placed so that some occlude others, then degraded (``presets.py``).

Objects are painted in list order (later ones in front). Each object records its
``amodal_box`` (pixel bounds of its whole shape, ``x, y, w, h``), its ``box`` (bounds of
the pixels left visible in the final image), its ``visible_fraction`` (visible / whole
pixels, in ``(0, 1]``), the visible ``segmentation`` (compressed RLE) and ``area`` (visible
pixels); ``polygon`` is the whole (amodal) outline. A pixel belongs to a shape when its
centre is inside the polygon (``shapes.rasterise``).
"""

from __future__ import annotations

import math

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from scalar.data.synth.backgrounds import background
from scalar.data.synth.degrade import degrade
from scalar.data.synth.presets import Preset
from scalar.data.synth.shapes import COLOURS, SIZES, STRIPE_SHADE, rasterise
from scalar.data.synth.taxonomy import CATEGORY_BY_NAME, rotated_extent, world_polygon

COLOUR_NAMES = tuple(COLOURS)
PLACE_TRIES = 30  # positions tried per object before the scene is drawn again
MAX_RESTARTS = 50
OUTLINE_SHADE = 0.35
DOT_MIX = 0.55  # dots mix the colour this far towards white


def sample_looks(rng, n: int, categories, cfg, preset: Preset, must_include=()) -> list[tuple]:
    """``n`` looks ``(colour, category, pattern)``: with chance ``cfg.same_look_fraction``
    an object copies an earlier look, else with chance ``preset.objects.distractor`` it reuses an
    earlier category (a same-category distractor), else it draws a new category."""
    patterns = preset.objects.patterns if cfg.texture else (None,)
    looks: list[tuple] = []
    for _ in range(n):
        u = rng.random()
        if looks and u < cfg.same_look_fraction:
            looks.append(looks[int(rng.integers(len(looks)))])
            continue
        if looks and rng.random() < preset.objects.distractor:
            cat = looks[int(rng.integers(len(looks)))][1]
        else:
            cat = categories[int(rng.integers(len(categories)))]
        colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        looks.append((colour, cat, patterns[int(rng.integers(len(patterns)))]))
    if must_include and not any(c in must_include for _, c, _ in looks):
        k = int(rng.integers(n))
        colour, _, pattern = looks[k]
        looks[k] = (colour, must_include[int(rng.integers(len(must_include)))], pattern)
    return looks


def _geometry(rng, cat: str, size: str, preset: Preset, s: int) -> tuple:
    lo, hi = preset.objects.small if size == "small" else preset.objects.large
    w = max(4.0, rng.uniform(lo, hi) * s)
    h = max(3.0, w * CATEGORY_BY_NAME[cat].aspect)
    angle = math.radians(rng.uniform(-preset.objects.rotation, preset.objects.rotation))
    ew, eh = rotated_extent(cat, w, h, angle)
    shrink = min(1.0, (s - 3) / max(ew, eh))
    return w * shrink, h * shrink, angle, ew * shrink, eh * shrink


def _position(rng, ew, eh, s, near: tuple | None) -> tuple[float, float]:
    if near is None:
        return rng.uniform(1, s - 1 - ew), rng.uniform(1, s - 1 - eh)
    x, y, w, h = near  # overlap the box of an earlier object
    x0 = rng.uniform(x - 0.7 * ew, x + w - 0.3 * ew)
    y0 = rng.uniform(y - 0.7 * eh, y + h - 0.3 * eh)
    return float(np.clip(x0, 1, s - 1 - ew)), float(np.clip(y0, 1, s - 1 - eh))


def place(rng, looks, cfg, preset: Preset) -> tuple[list[dict], np.ndarray] | None:
    """Objects with polygons and the owner map (index of the front object per pixel, -1
    for background), or None when some object found no position."""
    s = cfg.image_size
    owner = np.full((s, s), -1, dtype=np.int32)
    objs, full, vis = [], [], []
    for k, (colour, cat, pattern) in enumerate(looks):
        size = SIZES[int(rng.integers(len(SIZES)))]
        w, h, angle, ew, eh = _geometry(rng, cat, size, preset, s)
        occlude = k > 0 and rng.random() < preset.objects.occlusion
        found = None
        for t in range(PLACE_TRIES):
            mode = "over" if occlude and t < PLACE_TRIES // 2 else "free"
            if t >= PLACE_TRIES - 5:
                mode = "any"
            near = objs[int(rng.integers(k))]["amodal_box"] if mode == "over" else None
            x0, y0 = _position(rng, ew, eh, s, near)
            poly = world_polygon(cat, w, h, angle, x0, y0)
            rows, cols, m = rasterise(poly, s, s)
            n = int(m.sum())
            if n < 6:
                continue
            under = owner[rows, cols][m]
            lost = np.bincount(under + 1, minlength=k + 1)[1:]
            if mode == "free" and lost.any() or mode == "over" and not lost.any():
                continue
            left = np.asarray(vis, dtype=np.int64) - lost
            if k and (left < np.asarray(full) * preset.objects.min_visible).any():
                continue
            found = (poly, rows, cols, m, n, left)
            break
        if found is None:
            return None
        poly, rows, cols, m, n, left = found
        owner[rows, cols][m] = k
        vis = [*left.tolist(), n]
        full.append(n)
        ys, xs = np.nonzero(m)
        amodal = (cols.start + int(xs.min()), rows.start + int(ys.min()),
                  int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1)  # fmt: skip
        objs.append({"category": cat, "colour": colour, "size": size, "texture": pattern,
                     "polygon": poly, "amodal_box": amodal, "angle": angle})  # fmt: skip
    for k, o in enumerate(objs):
        mask = owner == k
        ys, xs = np.nonzero(mask)
        o["box"] = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
        o["visible_fraction"] = round(vis[k] / full[k], 4)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        o["segmentation"] = {"size": [s, s], "counts": rle["counts"].decode("ascii")}
        o["area"] = float(vis[k])
    return objs, owner


def _fill(rng, o: dict, rows, cols, m, preset: Preset) -> np.ndarray:
    """Colours ``(n, 3)`` of the object's pixels ``m`` of the patch ``rows, cols``."""
    rgb = np.array(COLOURS[o["colour"]], dtype=np.float64)
    rgb = np.clip(rgb + rng.normal(0.0, preset.objects.colour_jitter, 3), 0, 255)
    yy, xx = np.mgrid[rows, cols].astype(np.float64) + 0.5
    a = o["angle"]
    u = xx * math.cos(a) + yy * math.sin(a)
    v = -xx * math.sin(a) + yy * math.cos(a)
    side = min(o["amodal_box"][2], o["amodal_box"][3])
    period = max(4.0, 0.3 * side)
    factor = np.ones(m.shape)
    out = np.broadcast_to(rgb, (*m.shape, 3)).copy()
    if o["texture"] == "striped":
        factor[(u // (period / 2)) % 2 == 1] = STRIPE_SHADE
    elif o["texture"] == "checked":
        factor[((u // (period / 2)) + (v // (period / 2))) % 2 == 1] = STRIPE_SHADE
    elif o["texture"] == "dotted":
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        dots = du * du + dv * dv < (0.3 * period) ** 2
        out[dots] = rgb * (1 - DOT_MIX) + 255.0 * DOT_MIX
    phi = rng.uniform(0, 2 * math.pi)
    x, y, w, h = o["amodal_box"]
    ramp = ((xx - x - w / 2) * math.cos(phi) + (yy - y - h / 2) * math.sin(phi)) / max(w, h)
    factor = factor * (1 + 2 * rng.uniform(0, preset.objects.shading) * ramp)
    if rng.random() < preset.objects.outline:
        edge = m & ~ndimage.binary_erosion(m)
        factor[edge] = OUTLINE_SHADE
    return (out * factor[..., None])[m]


def place_with_restarts(rng, cfg, preset: Preset, categories, must_include, placer,
                        what: str = "image"):  # fmt: skip
    """Draw a scene's object looks and ``placer(looks)`` them, drawing again (up to
    ``MAX_RESTARTS`` times) while the placer finds no room; its result otherwise."""
    for _ in range(MAX_RESTARTS):
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        placed = placer(sample_looks(rng, n, categories, cfg, preset, must_include))
        if placed is not None:
            return placed
    raise RuntimeError(
        f"could not place {cfg.max_objects} objects in a {cfg.image_size}px {what} after "
        f"{MAX_RESTARTS} tries; use a larger image_size or fewer objects"
    )


def world_scene(rng, cfg, preset: Preset, categories, must_include=()) -> tuple[list, np.ndarray]:
    """Objects and the rendered ``uint8`` image of one scene of the realistic world."""
    s = cfg.image_size
    objs, _ = place_with_restarts(
        rng, cfg, preset, categories, must_include, lambda looks: place(rng, looks, cfg, preset)
    )
    img = background(rng, s, preset)
    for o in objs:
        rows, cols, m = rasterise(o["polygon"], s, s)
        img[rows, cols][m] = _fill(rng, o, rows, cols, m, preset)
    for o in objs:
        del o["angle"]
    return objs, degrade(rng, img, preset)
