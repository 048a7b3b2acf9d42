"""Sampling the objects of one synthetic scene: looks (colour, shape), sizes and boxes.

Sizes: an object's box side is ``U(SIZE_RANGES[size]) * image_size`` pixels (an
ellipse's height is 0.6 of its width). Boxes are integer and kept one pixel apart and one
pixel inside the image when ``overlap == 0``; with ``overlap > 0`` a box may overlap the
others up to that IoU. About ``same_look_fraction`` of the objects share colour and shape
(and texture) with at least one other object of the scene.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from scalar.data.synth.presets import DIFFICULTIES, PRESETS, Preset
from scalar.data.synth.shapes import (
    COLOURS,
    SHAPE_BY_NAME,
    SHAPES,
    SIZES,
    TEXTURES,
    shape_polygon,
)
from scalar.data.synth.taxonomy import CATEGORIES
from scalar.data.synth.taxonomy import HELD_OUT as WORLD_HELD_OUT

SIZE_RANGES = {"small": (0.11, 0.14), "large": (0.22, 0.28)}
GAP = 1  # pixels between boxes (and to the image border) when overlap == 0
MAX_RESTARTS = 50
OVERLAP_TRIES = 100
FREE_TRIES = 20  # uniform rejection sampling before the exact free-position search
FLAT_HELD_OUT = ("hexagon", "heart")
GEOMETRIES = ("planar", "ground_plane")


@dataclass(frozen=True)
class Look:
    """World-specific build options: the flat world's overlap and noise (the presets place
    and degrade scenes themselves) and the preset worlds' geometry."""

    overlap: float = 0.0  # largest IoU between two boxes (0: boxes kept apart)
    noise: float = 0.0  # Gaussian pixel noise std, fraction of 255
    geometry: str = "planar"  # planar | ground_plane (metric 3-D scenes, scene3d.py; presets only)


LOOK_OPTIONS = ("overlap", "noise", "geometry")  # build options that go into ``SynthConfig.look``


@dataclass
class SynthConfig:
    """Options of a synthetic corpus (see ``build_synthetic``)."""

    seed: int = 0
    n_train: int = 4000
    n_val: int = 400
    n_test: int = 400
    n_heldout: int = 400
    n_unlabeled: int = 1000
    image_size: int = 128
    min_objects: int | None = None  # None: 2 (flat), else the preset's
    max_objects: int | None = None  # None: 5 (flat), else the preset's
    same_look_fraction: float = 0.4
    texture: bool | None = None  # None: False (flat), True (fill patterns) otherwise
    look: Look = Look()  # overlap, noise (flat world), geometry (build options of those names)
    held_out_categories: tuple[str, ...] | None = None  # None: the world's own three/two
    categories: tuple[str, ...] | None = None  # None: every category of the world
    difficulty: str = "flat"  # flat (shapes.py) | easy | default | hard (presets.py)

    def __post_init__(self) -> None:
        flat = self.difficulty == "flat"
        preset = None if flat else PRESETS.get(self.difficulty)
        if self.min_objects is None:
            self.min_objects = 2 if preset is None else preset.objects.min_objects
        if self.max_objects is None:
            self.max_objects = 5 if preset is None else preset.objects.max_objects
        if self.texture is None:
            self.texture = not flat
        if self.held_out_categories is None:
            self.held_out_categories = FLAT_HELD_OUT if flat else WORLD_HELD_OUT
        self.held_out_categories = tuple(self.held_out_categories)
        if self.categories is not None:
            self.categories = tuple(self.categories)

    @property
    def geometry(self) -> str:
        return self.look.geometry

    def preset(self) -> Preset | None:
        """The difficulty preset (None for the flat world)."""
        return None if self.difficulty == "flat" else PRESETS[self.difficulty]

    def catalogue(self) -> tuple:
        """The world's categories (objects with ``name`` and ``supercategory``), in order."""
        return SHAPES if self.difficulty == "flat" else CATEGORIES

    def validate(self) -> None:
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)}: {self.difficulty!r}")
        most = 8 if self.difficulty == "flat" else 12
        if not 1 <= self.min_objects <= self.max_objects <= most:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= {most}, got {self.span()}")
        if self.difficulty != "flat" and (self.look.overlap or self.look.noise):
            raise ValueError(
                "overlap and noise are flat-world options; the difficulty presets place and "
                f"degrade scenes themselves (scalar/data/synth/presets.py): {self.difficulty}"
            )
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {list(GEOMETRIES)}: {self.geometry!r}")
        if self.geometry != "planar" and self.difficulty == "flat":
            raise ValueError(
                "geometry=ground_plane needs a difficulty preset (easy | default | hard)"
            )
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        if not 0.0 <= self.same_look_fraction <= 1.0:
            raise ValueError(f"same_look_fraction must be in [0, 1]: {self.same_look_fraction}")
        if not 0.0 <= self.look.overlap < 1.0:
            raise ValueError(f"overlap (max IoU) must be in [0, 1): {self.look.overlap}")
        names = self.category_names()
        known = {c.name for c in self.catalogue()}
        asked = (*(self.categories or ()), *self.held_out_categories)
        unknown = [c for c in asked if c not in known]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; known: {sorted(known)}")
        if not set(self.held_out_categories) <= set(names):
            raise ValueError("held_out_categories must be among the categories")
        if self.n_heldout > 0 and not self.held_out_categories:
            raise ValueError("n_heldout > 0 needs held_out_categories (or set n_heldout=0)")
        if len(self.seen_categories()) < 2:
            raise ValueError("need at least two categories that are not held out")
        for field in ("n_train", "n_val", "n_test", "n_heldout", "n_unlabeled"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field} must be >= 0")

    def span(self) -> tuple[int, int]:
        return (self.min_objects, self.max_objects)

    def category_names(self) -> tuple[str, ...]:
        wanted = self.categories
        return tuple(s.name for s in self.catalogue() if wanted is None or s.name in wanted)

    def seen_categories(self) -> tuple[str, ...]:
        return tuple(c for c in self.category_names() if c not in self.held_out_categories)

    def as_dict(self) -> dict:
        d = {}
        for name, value in asdict(self).items():  # the manifest's keys and order predate ``look``
            if name == "look":
                continue
            d[name] = value
            if name == "same_look_fraction":
                d["overlap"] = self.look.overlap
            elif name == "texture":
                d["noise"] = self.look.noise
        d["held_out_categories"] = list(self.held_out_categories)
        d["categories"] = list(self.category_names())
        if self.difficulty == "flat":  # the flat world's manifest predates the presets
            del d["difficulty"]
        if self.geometry != "planar":  # manifests of planar worlds predate geometry
            d["geometry"] = self.geometry
        return d


def _group_sizes(rng: np.random.Generator, n: int, fraction: float) -> list[int]:
    """Sizes (>= 2) of same-look groups; their sum is Binomial(n, fraction) in expectation."""
    m = int(rng.binomial(n, fraction))
    if m == 1:
        m = 2 if rng.random() < 0.5 else 0
    groups = []
    while m > 0:
        g = m if m <= 3 else int(rng.integers(2, m - 1))
        groups.append(g)
        m -= g
    return groups


def sample_looks(
    rng: np.random.Generator,
    n: int,
    categories: tuple[str, ...],
    fraction: float,
    texture: bool,
    must_include: tuple[str, ...] = (),
) -> list[tuple[str, str, str | None]]:
    """``n`` looks ``(colour, shape, texture)``, a ``fraction`` of them shared by a group.

    When ``must_include`` is given, at least one look has a shape from it.
    """
    groups = _group_sizes(rng, n, fraction)
    n_looks = len(groups) + n - sum(groups)
    colours = list(COLOURS)
    pool = [(c, s) for s in categories for c in colours]
    picks = [pool[i] for i in rng.choice(len(pool), size=n_looks, replace=False)]
    if must_include and not any(s in must_include for _, s in picks):
        k = int(rng.integers(n_looks))
        shape = must_include[int(rng.integers(len(must_include)))]
        free = [c for c in colours if (c, shape) not in picks]
        picks[k] = (free[int(rng.integers(len(free)))], shape)
    looks = []
    for (colour, shape), count in zip(picks, groups + [1] * (n_looks - len(groups)), strict=True):
        tex = TEXTURES[int(rng.integers(2))] if texture else None
        looks.extend([(colour, shape, tex)] * count)
    order = rng.permutation(len(looks))
    return [looks[i] for i in order]


def _box_size(rng: np.random.Generator, shape: str, size: str, image_size: int) -> tuple[int, int]:
    lo, hi = SIZE_RANGES[size]
    w = max(4, int(round(rng.uniform(lo, hi) * image_size)))
    h = max(3, int(round(w * SHAPE_BY_NAME[shape].aspect)))
    return w, h


def _free_positions(occ: np.ndarray, w: int, h: int) -> np.ndarray:
    """Top-left ``(x, y)`` of every ``w x h`` window of ``occ`` with no occupied pixel."""
    rows, cols = occ.shape
    if w > cols or h > rows:
        return np.zeros((0, 2), dtype=np.int64)
    s = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    s[1:, 1:] = occ.cumsum(0).cumsum(1)
    win = s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]
    ys, xs = np.nonzero(win == 0)
    return np.stack([xs, ys], axis=1)


def _iou(a: tuple, b: tuple) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _place(rng, sizes: list[tuple[int, int]], image_size: int, overlap: float) -> list | None:
    """Integer boxes ``(x, y, w, h)`` for ``sizes`` (largest placed first), or None."""
    occ = np.zeros((image_size, image_size), dtype=bool)
    occ[:GAP], occ[-GAP:], occ[:, :GAP], occ[:, -GAP:] = True, True, True, True
    boxes: list = [None] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda k: (-sizes[k][0] * sizes[k][1], k)):
        w, h = sizes[i]
        box = None
        if overlap > 0:
            placed = [b for b in boxes if b is not None]
            for _ in range(OVERLAP_TRIES):
                x = int(rng.integers(GAP, image_size - GAP - w + 1))
                y = int(rng.integers(GAP, image_size - GAP - h + 1))
                if all(_iou((x, y, w, h), b) <= overlap for b in placed):
                    box = (x, y, w, h)
                    break
        for _ in range(FREE_TRIES if box is None else 0):
            x = int(rng.integers(GAP, image_size - GAP - w + 1))
            y = int(rng.integers(GAP, image_size - GAP - h + 1))
            if not occ[y : y + h, x : x + w].any():
                box = (x, y, w, h)
                break
        if box is None:  # crowded: sample uniformly among the free positions that remain
            free = _free_positions(occ, w, h)
            if len(free) == 0:
                return None
            x, y = (int(v) for v in free[int(rng.integers(len(free)))])
            box = (x, y, w, h)
        boxes[i] = box
        x, y = box[0], box[1]
        occ[max(0, y - GAP) : y + h + GAP, max(0, x - GAP) : x + w + GAP] = True
    return boxes


def sample_objects(
    rng: np.random.Generator,
    cfg: SynthConfig,
    categories: tuple[str, ...],
    must_include: tuple[str, ...] = (),
) -> list[dict]:
    """Objects of one scene: dicts with category, colour, size, texture, box, polygon."""
    for _ in range(MAX_RESTARTS):
        n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        looks = sample_looks(rng, n, categories, cfg.same_look_fraction, cfg.texture, must_include)
        sizes = [SIZES[int(rng.integers(2))] for _ in looks]
        dims = [_box_size(rng, s, z, cfg.image_size) for (_, s, _), z in zip(looks, sizes)]
        boxes = _place(rng, dims, cfg.image_size, cfg.look.overlap)
        if boxes is None:
            continue
        return [
            {
                "category": shape,
                "colour": colour,
                "size": size,
                "texture": tex,
                "box": box,
                "polygon": shape_polygon(shape, box),
            }
            for (colour, shape, tex), size, box in zip(looks, sizes, boxes, strict=True)
        ]
    raise RuntimeError(
        f"could not place {cfg.max_objects} objects in a {cfg.image_size}px image after "
        f"{MAX_RESTARTS} tries; use a larger image_size or fewer objects"
    )
