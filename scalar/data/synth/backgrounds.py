"""Procedural backgrounds of the realistic world: multi-scale value noise, stripes and
gradients between two colours, and a clutter of small marks that are not objects.

No installed package ships photographs or texture images (scikit-image is not a
dependency), so every background is procedural. All draws come from the scene's generator.
"""

from __future__ import annotations

import math

import numpy as np

from scalar.data.synth.presets import Preset
from scalar.data.synth.shapes import rasterise

NOISE_CELLS = (3, 6, 12, 24)  # lattice cells per image side of each octave, coarse first
NOISE_PERSISTENCE = 0.65  # amplitude ratio between successive octaves
MARKS = ("dot", "line", "blob")


def value_noise(rng: np.random.Generator, h: int, w: int, cells=NOISE_CELLS) -> np.ndarray:
    """Sum of bilinearly interpolated random lattices (octaves), scaled to ``[0, 1]``."""
    total = np.zeros((h, w))
    amp = 1.0
    for n in cells:
        grid = rng.random((n + 1, n + 1))
        ys, xs = np.linspace(0, n, h, endpoint=False), np.linspace(0, n, w, endpoint=False)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep
        a, b = grid[y0][:, x0], grid[y0][:, x0 + 1]
        c, d = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
        total += amp * ((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy)
        amp *= NOISE_PERSISTENCE
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-9)


def random_colour(rng: np.random.Generator, saturation: float) -> np.ndarray:
    """An RGB colour (floats 0..255) pulled towards its grey by ``1 - saturation``."""
    c = rng.uniform(30, 230, size=3)
    return c.mean() + saturation * (c - c.mean())


def _pair(rng: np.random.Generator, preset: Preset) -> tuple[np.ndarray, np.ndarray]:
    a = random_colour(rng, preset.background.background_saturation)
    spread = rng.uniform(*preset.background.background_contrast) * 255.0
    b = a + rng.normal(0.0, 1.0, 3) * spread / math.sqrt(3)
    return a, np.clip(b, 0, 255)


def _blend(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]


def background(rng: np.random.Generator, size: int, preset: Preset) -> np.ndarray:
    """A float RGB ``(size, size, 3)`` background of a kind drawn by the preset's weights."""
    kinds, weights = zip(*preset.background.backgrounds, strict=True)
    p = np.asarray(weights, dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    a, b = _pair(rng, preset)
    if kind == "noise":
        img = _blend(value_noise(rng, size, size), a, b)
    elif kind == "stripes":
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(0.05, 0.2) * size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        u = xx * math.cos(theta) + yy * math.sin(theta)
        u += value_noise(rng, size, size, (3, 6)) * period * rng.uniform(0, 1.5)  # wobble
        hardness = rng.uniform(1.0, 6.0)
        t = np.clip(0.5 + hardness * 0.5 * np.sin(2 * math.pi * u / period), 0, 1)
        img = _blend(t, a, b)
    elif kind == "gradient":
        theta = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
        t = xx * math.cos(theta) + yy * math.sin(theta)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        img = _blend(0.8 * t + 0.2 * value_noise(rng, size, size, (6, 12, 24)), a, b)
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    add_clutter(rng, img, preset)
    return img


def add_clutter(rng: np.random.Generator, img: np.ndarray, preset: Preset) -> None:
    """Paint small dots, line segments and blobs (no category) onto ``img`` in place."""
    size = img.shape[0]
    n = int(rng.integers(preset.background.clutter[0], preset.background.clutter[1] + 1))
    top = max(2.0, preset.background.clutter_size * size)
    for _ in range(n):
        kind = MARKS[int(rng.integers(len(MARKS)))]
        colour = random_colour(rng, min(1.0, preset.background.background_saturation + 0.3))
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(1.0, top) / 2
        if kind == "line":
            theta = rng.uniform(0, math.pi)
            dx, dy = math.cos(theta) * r * 2, math.sin(theta) * r * 2
            nx, ny = -math.sin(theta) * 0.6, math.cos(theta) * 0.6
            poly = [cx - dx + nx, cy - dy + ny, cx + dx + nx, cy + dy + ny,
                    cx + dx - nx, cy + dy - ny, cx - dx - nx, cy - dy - ny]  # fmt: skip
        else:
            k = 8 if kind == "dot" else 5
            angles = np.sort(rng.uniform(0, 2 * math.pi, k)) if kind == "blob" else None
            if angles is None:
                angles = np.linspace(0, 2 * math.pi, k, endpoint=False)
            radii = r * (rng.uniform(0.5, 1.0, k) if kind == "blob" else np.ones(k))
            poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            poly = poly.reshape(-1).tolist()
        rows, cols, mask = rasterise(poly, size, size)
        if mask.size:
            img[rows, cols][mask] = colour
