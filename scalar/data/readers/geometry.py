"""Metric 3-D annotations of COCO-layout files (the ground-plane synthetic world).

Extra keys a reader turns into ``Scene.meta["geometry"]`` (absent keys: no geometry):

- image rows: ``intrinsics`` ``{fx, fy, cx, cy}`` (pixels), ``camera_height`` (metres above
  the ground) and ``depth_file`` (a 16-bit PNG of millimetres, relative to the image's
  folder);
- annotation rows: ``center_3d`` ``[x, y, z]`` and ``size_3d`` ``[width, height, depth]``
  (metres, camera frame: x right, y down, z forward).

``Scene.meta["geometry"]`` is ``{"intrinsics", "camera_height", "depth_file" (absolute),
"objects": {object id: {"center", "size"}}}``. Rows whose 3-D keys are not finite numbers of
the right length are counted as ``invalid_geometry`` and carry no geometry.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from scalar.data.scene import Scene, Skips

INTRINSICS = ("fx", "fy", "cx", "cy")


def _numbers(v: Any, n: int) -> list[float] | None:
    if not isinstance(v, list | tuple) or len(v) != n:
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        return None
    out = [float(x) for x in v]
    return out if all(math.isfinite(x) for x in out) else None


def image_geometry(row: dict, image_path: str | Path, skips: Skips, where: str) -> dict:
    """``{"geometry": {...}}`` for an image row with ``intrinsics``, else ``{}``."""
    k = row.get("intrinsics")
    if k is None:
        return {}
    values = _numbers([k.get(n) for n in INTRINSICS], 4) if isinstance(k, dict) else None
    if values is None or values[0] <= 0 or values[1] <= 0:
        skips.add("invalid_geometry", f"{where} intrinsics {k!r}")
        return {}
    geo: dict[str, Any] = {"intrinsics": dict(zip(INTRINSICS, values, strict=True)),
                           "objects": {}}  # fmt: skip
    height = _numbers([row.get("camera_height")], 1)
    if height is not None:
        geo["camera_height"] = height[0]
    depth = row.get("depth_file")
    if isinstance(depth, str) and depth:
        geo["depth_file"] = str(Path(image_path).parent / depth)
    return {"geometry": geo}


def add_object_geometry(scene: Scene, row: dict, skips: Skips, where: str) -> None:
    """Record ``center_3d`` / ``size_3d`` of annotation ``row`` in ``scene.meta``."""
    if "center_3d" not in row and "size_3d" not in row:
        return
    geo = scene.meta.get("geometry")
    centre, size = _numbers(row.get("center_3d"), 3), _numbers(row.get("size_3d"), 3)
    if geo is None or centre is None or size is None or min(size) < 0:
        skips.add("invalid_geometry", f"{where} center_3d/size_3d")
        return
    geo["objects"][row["id"]] = {"center": centre, "size": size}


def has_geometry(scene: Scene) -> bool:
    """Whether the scene records intrinsics and 3-D boxes of at least two objects."""
    geo = scene.meta.get("geometry") or {}
    return len(geo.get("objects") or {}) >= 2
