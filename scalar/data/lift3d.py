"""Lifting 2-D objects to metric 3-D (SpatialVLM's pipeline) from a depth map.

A depth map (metres along the optical axis; 0 or non-finite: no depth) and pinhole
intrinsics (from the data, or ``intrinsics_from_fov``: an assumed field of view, which the
output states) back-project each object's mask (COCO polygons / RLE, or its box when it has
no mask) to a point set in the camera frame (x right, y down, z forward). Per object:

- outliers removed: points whose depth is further than ``MAD_K`` scaled median absolute
  deviations from the median depth (mixed-in background, mask edges);
- centre: x and y the middle of the ``PCT`` .. ``100 - PCT`` percentile range (the middle
  of the robust extent, so that a shape's uneven mass does not move it), z the median;
- size: the percentile range per axis (width, height, depth).

The ground plane is fitted by RANSAC to the points no object covers (``fit_ground_plane``):
its normal points from the ground towards the camera, so ``height_above_ground(p)`` is the
canonical "up" coordinate (SpatialVLM's canonicalisation) and the camera height is the
plane's offset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalar.data.readers.coco import mask_to_array
from scalar.data.scene import Object

MAD_K = 3.0  # outlier cut, in scaled MADs of depth
MAD_FLOOR = 0.01  # the MAD is at least this fraction of the median depth
PCT = 1.0  # percentile bounds of the robust extent
MIN_POINTS = 4  # fewer points with depth: the object is not lifted
RANSAC_ITERS = 200
RANSAC_TOL = 0.03  # metres from the plane that count as on it
MAX_PLANE_POINTS = 20000  # points the RANSAC samples from (drawn evenly)


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> dict[str, float]:
    """Intrinsics of a camera with horizontal field of view ``fov_deg`` and the principal
    point at the image centre (square pixels)."""
    if not 0 < fov_deg < 180:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    return {"fx": f, "fy": f, "cx": width / 2, "cy": height / 2}


def backproject(depth: np.ndarray, k: dict[str, float], mask: np.ndarray) -> np.ndarray:
    """``(n, 3)`` camera-frame points of the pixels of ``mask`` that have a depth."""
    rows, cols = np.nonzero(mask & np.isfinite(depth) & (depth > 0))
    z = depth[rows, cols].astype(np.float64)
    x = (cols + 0.5 - k["cx"]) * z / k["fx"]
    y = (rows + 0.5 - k["cy"]) * z / k["fy"]
    return np.stack([x, y, z], axis=1)


def remove_outliers(points: np.ndarray) -> np.ndarray:
    """The points whose depth lies within ``MAD_K`` scaled MADs of the median depth."""
    if len(points) == 0:
        return points
    z = points[:, 2]
    med = float(np.median(z))
    mad = max(1.4826 * float(np.median(np.abs(z - med))), MAD_FLOOR * med)
    return points[np.abs(z - med) <= MAD_K * mad]


def robust_box(points: np.ndarray, pixel: tuple[float, float] = (0.0, 0.0)) -> dict | None:
    """``{"center", "size", "n_points"}`` of a point set (see the module docstring);
    ``pixel``: the footprint of one pixel at unit depth (``1 / fx``, ``1 / fy``), added to
    the x / y extents (points are pixel centres)."""
    pts = remove_outliers(points)
    if len(pts) < MIN_POINTS:
        return None
    lo, hi = np.percentile(pts, PCT, axis=0), np.percentile(pts, 100 - PCT, axis=0)
    z = float(np.median(pts[:, 2]))
    hi = hi + np.array([pixel[0] * z / 2, pixel[1] * z / 2, 0.0])
    lo = lo - np.array([pixel[0] * z / 2, pixel[1] * z / 2, 0.0])
    centre = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, z]
    return {"center": [round(float(v), 4) for v in centre],
            "size": [round(float(v), 4) for v in hi - lo], "n_points": int(len(pts))}  # fmt: skip


def object_mask(obj: Object, width: int, height: int) -> tuple[np.ndarray, str]:
    """The object's mask as a bool array and how it was made (``mask`` | ``box``)."""
    if obj.mask is not None:
        return mask_to_array(obj.mask, height, width), "mask"
    m = np.zeros((height, width), dtype=bool)
    x1, y1, x2, y2 = (int(round(v)) for v in obj.box)
    m[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
    return m, "box"


def fit_ground_plane(points: np.ndarray, seed: int = 0) -> dict[str, Any] | None:
    """RANSAC plane ``n . p + d = 0`` (unit ``n`` pointing towards the camera, so ``d > 0``
    is the camera's height above it) refined by least squares on its inliers; None when
    fewer than 3 points or no plane holds a tenth of them."""
    if len(points) < 3:
        return None
    rng = np.random.default_rng(seed)
    if len(points) > MAX_PLANE_POINTS:
        points = points[np.linspace(0, len(points) - 1, MAX_PLANE_POINTS).astype(int)]
    best = None
    for _ in range(RANSAC_ITERS):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            continue
        n = n / norm
        inliers = np.abs((points - a) @ n) < RANSAC_TOL
        if best is None or inliers.sum() > best.sum():
            best = inliers
    if best is None or best.sum() < max(3, len(points) // 10):
        return None
    on = points[best]
    centroid = on.mean(axis=0)
    n = np.linalg.svd(on - centroid, full_matrices=False)[2][-1]  # least-squares normal
    d = -float(n @ centroid)
    if d < 0:  # orient towards the camera (the origin)
        n, d = -n, -d
    return {"normal": [round(float(v), 5) for v in n], "offset": round(d, 4),
            "camera_height": round(d, 4), "inliers": int(best.sum())}  # fmt: skip


def height_above_ground(point, plane: dict[str, Any]) -> float:
    return float(np.dot(plane["normal"], point) + plane["offset"])


def lift_scene(depth: np.ndarray, k: dict[str, float], objects: list[Object]) -> dict[str, Any]:
    """The geometry (``Scene.meta["geometry"]`` layout) lifted from ``depth``: ``objects``
    ``{id: {center, size, n_points, from}}`` for the objects with enough depth, ``ground``
    (``fit_ground_plane`` on the uncovered pixels) and ``camera_height`` when it was found."""
    h, w = depth.shape
    covered = np.zeros((h, w), dtype=bool)
    out: dict[str, Any] = {"intrinsics": dict(k), "objects": {}, "skipped": 0}
    for o in objects:
        if o.iscrowd:
            continue
        m, source = object_mask(o, w, h)
        covered |= m
        box = robust_box(backproject(depth, k, m), (1 / k["fx"], 1 / k["fy"]))
        if box is None:
            out["skipped"] += 1
            continue
        out["objects"][o.id] = {**box, "from": source}
    plane = fit_ground_plane(backproject(depth, k, ~covered))
    if plane is not None:
        out["ground"] = plane
        out["camera_height"] = plane["camera_height"]
    return out


def centre_errors(lifted: dict[str, Any], truth: dict[str, Any]) -> list[float]:
    """Relative errors ``|c_lifted - c_true| / |c_true|`` of the objects both record."""
    errs = []
    for oid, t in truth["objects"].items():
        got = lifted["objects"].get(oid)
        if got is not None:
            c = np.asarray(t["center"])
            errs.append(float(np.linalg.norm(np.asarray(got["center"]) - c) / np.linalg.norm(c)))
    return errs
