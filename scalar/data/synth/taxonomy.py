"""The vocabulary of the realistic world (``difficulty`` other than ``flat``).

Eighteen categories in four supercategories, each with a hypernym path of three levels
above it (``category -> supercategory -> family -> shape``). Every category is a polygon
normalised to the unit square, like the flat world's (``shapes.py``); the flat world keeps
its own eight categories unchanged. Three categories are held out of every training
annotation: they appear only in the ``heldout`` split and the unlabeled pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scalar.data.synth.shapes import UNIT_POLYGONS, _normalise, _ring

ROOT = "shape"
HELD_OUT = ("hexagon", "heart", "trapezoid")


@dataclass(frozen=True)
class Category:
    """A category of the realistic world: name, supercategory, family, box aspect (h / w)."""

    name: str
    supercategory: str
    family: str
    aspect: float = 1.0

    def hypernyms(self) -> list[str]:
        """General terms above the category, nearest first (3 levels)."""
        return [self.supercategory, self.family, ROOT]


CATEGORIES: tuple[Category, ...] = (
    Category("circle", "round", "curved figure"),
    Category("ellipse", "round", "curved figure", aspect=0.6),
    Category("semicircle", "round", "curved figure", aspect=0.5),
    Category("crescent", "round", "curved figure", aspect=1.3),
    Category("triangle", "polygon", "angular figure"),
    Category("pentagon", "polygon", "angular figure"),
    Category("hexagon", "polygon", "angular figure"),
    Category("octagon", "polygon", "angular figure"),
    Category("square", "quadrilateral", "angular figure"),
    Category("rectangle", "quadrilateral", "angular figure", aspect=0.55),
    Category("diamond", "quadrilateral", "angular figure", aspect=1.3),
    Category("trapezoid", "quadrilateral", "angular figure", aspect=0.6),
    Category("parallelogram", "quadrilateral", "angular figure", aspect=0.55),
    Category("star", "symbol", "sign"),
    Category("cross", "symbol", "sign"),
    Category("heart", "symbol", "sign"),
    Category("arrow", "symbol", "sign", aspect=0.6),
    Category("chevron", "symbol", "sign"),
)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}


def _crescent(d: float = 0.5, r: float = 0.85, n: int = 24) -> list[tuple]:
    """The unit disc minus a disc of radius ``r`` centred ``d`` to the right."""
    x = (1 + d * d - r * r) / (2 * d)  # where the two circles cross
    y = math.sqrt(1 - x * x)
    a, b = math.atan2(y, x), math.atan2(y, x - d)
    outer = [(math.cos(t), math.sin(t)) for t in np.linspace(a, 2 * math.pi - a, n)]
    inner = [(d + r * math.cos(t), r * math.sin(t)) for t in np.linspace(2 * math.pi - b, b, n)]
    return outer + inner[1:-1]


def _semicircle(n: int = 20) -> list[tuple]:
    return [(math.cos(t), -math.sin(t)) for t in np.linspace(0.0, math.pi, n)]


WORLD_POLYGONS: dict[str, np.ndarray] = {
    **UNIT_POLYGONS,
    "semicircle": _normalise(_semicircle()),
    "crescent": _normalise(_crescent()),
    "pentagon": _normalise(_ring(5, start=-math.pi / 2)),
    "octagon": _normalise(_ring(8, start=math.pi / 8)),
    "rectangle": _normalise([(0, 0), (1, 0), (1, 1), (0, 1)]),
    "diamond": _normalise([(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]),
    "trapezoid": _normalise([(0.25, 0), (0.75, 0), (1, 1), (0, 1)]),
    "parallelogram": _normalise([(0.3, 0), (1, 0), (0.7, 1), (0, 1)]),
    "arrow": _normalise(
        [(0, 0.35), (0.6, 0.35), (0.6, 0), (1, 0.5), (0.6, 1), (0.6, 0.65), (0, 0.65)]
    ),  # fmt: skip
    "chevron": _normalise([(0, 0), (0.45, 0), (1, 0.5), (0.45, 1), (0, 1), (0.55, 0.5)]),
}


def world_polygon(name: str, w: float, h: float, angle: float, x0: float, y0: float) -> list:
    """Flat polygon of ``name`` sized ``w x h``, rotated by ``angle`` (radians) about its
    centre, then shifted so its bounds start at ``(x0, y0)``."""
    pts = (WORLD_POLYGONS[name] - 0.5) * np.array([w, h], dtype=np.float64)
    c, s = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]])
    pts = pts - pts.min(axis=0) + np.array([x0, y0])
    return [round(v, 2) for v in pts.reshape(-1).tolist()]


def rotated_extent(name: str, w: float, h: float, angle: float) -> tuple[float, float]:
    """Width and height of the bounds of ``name`` sized ``w x h`` rotated by ``angle``."""
    pts = (WORLD_POLYGONS[name] - 0.5) * np.array([w, h], dtype=np.float64)
    c, s = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]])
    span = pts.max(axis=0) - pts.min(axis=0)
    return float(span[0]), float(span[1])
