"""Shape catalogue and rendering of synthetic scenes.

Every shape is a polygon normalised so that its vertex bounds are exactly the unit
square; it is mapped into an object's integer box ``(x, y, w, h)``. The polygon is also
the COCO segmentation. Pixels are filled when their centre ``(px + 0.5, py + 0.5)`` lies
inside the polygon (even-odd rule), so the filled pixel count is an unbiased estimate of
the polygon area. Later objects are painted over earlier ones.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

BACKGROUND = (250, 250, 250)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 30),
    "purple": (130, 50, 170),
    "orange": (250, 130, 20),
    "cyan": (20, 200, 210),
    "brown": (120, 75, 35),
}
SIZES = ("small", "large")
TEXTURES = ("plain", "striped")
STRIPE_SHADE = 0.55  # striped objects alternate their colour and colour * STRIPE_SHADE
STRIPE_PERIOD = 6  # pixels per dark+light pair along x + y


@dataclass(frozen=True)
class ShapeSpec:
    """A category: its name, supercategory and box aspect (height / width)."""

    name: str
    supercategory: str
    aspect: float = 1.0


SHAPES: tuple[ShapeSpec, ...] = (
    ShapeSpec("circle", "round"),
    ShapeSpec("ellipse", "round", aspect=0.6),
    ShapeSpec("square", "polygon"),
    ShapeSpec("triangle", "polygon"),
    ShapeSpec("hexagon", "polygon"),
    ShapeSpec("star", "symbol"),
    ShapeSpec("cross", "symbol"),
    ShapeSpec("heart", "symbol"),
)
SHAPE_BY_NAME = {s.name: s for s in SHAPES}


def _ring(n: int, start: float = 0.0, radii: tuple[float, ...] = (1.0,)) -> list[tuple]:
    pts = []
    for k in range(n):
        a = start + 2 * math.pi * k / n
        r = radii[k % len(radii)]
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart(n: int = 40) -> list[tuple]:
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x, y))
    return pts


def _cross(t: float = 0.36) -> list[tuple]:
    a, b = 0.5 - t / 2, 0.5 + t / 2
    return [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b),
            (0, a), (a, a)]  # fmt: skip


def _normalise(pts: list[tuple]) -> np.ndarray:
    arr = np.asarray(pts, dtype=np.float64)
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    return (arr - lo) / (hi - lo)


UNIT_POLYGONS: dict[str, np.ndarray] = {
    "circle": _normalise(_ring(32)),
    "ellipse": _normalise(_ring(32)),
    "square": _normalise([(0, 0), (1, 0), (1, 1), (0, 1)]),
    "triangle": _normalise([(0.5, 0), (1, 1), (0, 1)]),
    "hexagon": _normalise(_ring(6)),
    "star": _normalise(_ring(10, start=-math.pi / 2, radii=(1.0, 0.5))),
    "cross": _normalise(_cross()),
    "heart": _normalise(_heart()),
}


def shape_polygon(shape: str, box: tuple[int, int, int, int]) -> list[float]:
    """Flat COCO polygon ``[x1, y1, x2, y2, ...]`` of ``shape`` filling ``box`` (x, y, w, h)."""
    x, y, w, h = box
    unit = UNIT_POLYGONS[shape]
    pts = unit * np.array([w, h], dtype=np.float64) + np.array([x, y], dtype=np.float64)
    return [round(v, 2) for v in pts.reshape(-1).tolist()]


def polygon_area(poly: list[float]) -> float:
    """Shoelace area of a flat polygon."""
    xs, ys = np.asarray(poly[0::2]), np.asarray(poly[1::2])
    xn, yn = np.concatenate([xs[1:], xs[:1]]), np.concatenate([ys[1:], ys[:1]])
    return float(abs(np.dot(xs, yn) - np.dot(ys, xn)) / 2)


def rasterise(poly: list[float], width: int, height: int) -> tuple[slice, slice, np.ndarray]:
    """Mask of the pixels whose centres are inside ``poly``, over the polygon's bounds.

    Returns ``(rows, cols, mask)`` so that ``image[rows, cols][mask]`` are the pixels.
    """
    xs, ys = np.asarray(poly[0::2]), np.asarray(poly[1::2])
    c0, c1 = max(0, int(math.floor(xs.min()))), min(width, int(math.ceil(xs.max())))
    r0, r1 = max(0, int(math.floor(ys.min()))), min(height, int(math.ceil(ys.max())))
    px = np.arange(c0, c1, dtype=np.float64)[None, None, :] + 0.5
    py = np.arange(r0, r1, dtype=np.float64)[None, :, None] + 0.5
    xb, yb = np.concatenate([xs[1:], xs[:1]]), np.concatenate([ys[1:], ys[:1]])
    keep = ys != yb  # horizontal edges cross no row of centres
    # edges x rows x 1: where each edge crosses each row of pixel centres
    xa, ya, xb, yb = (v[keep][:, None, None] for v in (xs, ys, xb, yb))
    crosses = (ya > py) != (yb > py)
    x_at = xa + (py - ya) * (xb - xa) / (yb - ya)
    # even-odd rule: a centre is inside when an odd number of crossings lie right of it
    inside = np.logical_xor.reduce(crosses & (px < x_at), axis=0)
    return slice(r0, r1), slice(c0, c1), inside


@functools.lru_cache(maxsize=4)
def _background(height: int, width: int) -> np.ndarray:
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = BACKGROUND  # a broadcast fill is slow: rendering copies this one
    img.flags.writeable = False
    return img


def render(objects: list[dict], width: int, height: int, noise: float, rng) -> np.ndarray:
    """RGB uint8 image of ``objects`` (dicts with polygon, colour, texture) on the background.

    ``noise`` > 0 adds Gaussian pixel noise of standard deviation ``noise * 255``.
    """
    img = _background(height, width).copy()
    if any(o.get("texture") == "striped" for o in objects):
        diag = np.arange(height)[:, None] + np.arange(width)[None, :]
        dark = (diag // (STRIPE_PERIOD // 2)) % 2 == 1
    for o in objects:
        rows, cols, mask = rasterise(o["polygon"], width, height)
        rgb = np.array(COLOURS[o["colour"]], dtype=np.float64)
        patch = img[rows, cols]
        patch[mask] = rgb.astype(np.uint8)
        if o.get("texture") == "striped":
            shaded = (rgb * STRIPE_SHADE).round().astype(np.uint8)
            patch[mask & dark[rows, cols]] = shaded
    if noise > 0:
        noisy = img.astype(np.float64) + rng.normal(0.0, noise * 255.0, size=img.shape)
        img = np.clip(noisy.round(), 0, 255).astype(np.uint8)
    return img
