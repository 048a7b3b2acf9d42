"""Row helpers of the Visual Genome reader: checked and fast paths for boxes, names, ids."""

from __future__ import annotations

import numbers
import sys
from pathlib import Path
from typing import Any

from scalar.data.readers.common import require
from scalar.data.scene import AnnotationError, Box, xywh_to_xyxy


def first_key(row: dict, keys: tuple[str, ...], path: Path, where: Any) -> Any:
    for k in keys:
        if k in row:
            return row[k]
    raise AnnotationError(path, where, f"missing key (one of {list(keys)})")


def raw_box(row: dict, keys: tuple[str, str, str, str], path: Path, where: Any) -> Box:
    require(row, keys, path, where)
    vals = [row[k] for k in keys]
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in vals):
        raise AnnotationError(path, where, f"box {keys} must be numbers: {vals}")
    return xywh_to_xyxy(vals)


NUM = (int, float)  # exact types of the fast path (bool and others take the checked one)
intern = sys.intern


FLOATS = tuple(float(i) for i in range(8192))  # shared floats of integral pixel values


def fast_box(row: dict, keys: tuple[str, str, str, str]) -> Box | None:
    """The raw xyxy box when the four values are plain ints/floats, else None.

    Integral coordinates (VG's are ints) reuse shared float objects: 96 bytes less per box.
    """
    get = row.get
    x, y, w, h = get(keys[0]), get(keys[1]), get(keys[2]), get(keys[3])
    if type(x) is int and type(y) is int and type(w) is int and type(h) is int:
        if 0 <= x and 0 <= y and 0 <= w and 0 <= h and x + w < 8192 and y + h < 8192:
            return (FLOATS[x], FLOATS[y], FLOATS[x + w], FLOATS[y + h])
    if type(x) in NUM and type(y) in NUM and type(w) in NUM and type(h) in NUM:
        x1, y1 = float(x), float(y)
        return (x1, y1, x1 + float(w), y1 + float(h))
    return None


def inside(b: Box, width: int, height: int) -> bool:
    """True when check_box would keep ``b`` unchanged without counting anything."""
    return 0.0 <= b[0] < b[2] <= width and 0.0 <= b[1] < b[3] <= height and width > 0 < height


def row_names(row: dict) -> list[str]:
    names = row.get("names", row.get("object_names", row.get("name")))
    if isinstance(names, str):
        names = [names]
    return [intern(n.strip().lower()) for n in names or [] if isinstance(n, str) and n.strip()]


def row_attrs(values: Any) -> list[str]:
    out: list[str] = []
    for v in values or []:
        if isinstance(v, str) and v.strip() and v.strip().lower() not in out:
            out.append(intern(v.strip().lower()))
    return out


MISSING = object()


def listed_id(row: Any, objects: dict) -> Any:
    """The row's ``object_id`` when that object is already kept (the common case), else None."""
    oid = row.get("object_id") if type(row) is dict else None
    return oid if oid is not None and oid in objects else None


def at(where) -> str:
    return where if isinstance(where, str) else " ".join(map(str, where))
