"""Row helpers of the Visual Genome reader: checked and fast paths for boxes, names, ids;
image paths and the category table."""

from __future__ import annotations

import numbers
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from errno import EBADF, ELOOP, ENOENT, ENOTDIR
from itertools import chain
from operator import attrgetter
from pathlib import Path
from stat import S_ISREG
from typing import Any

from scalar.data.readers.common import require
from scalar.data.readers.jsonstream import iter_json_array
from scalar.data.scene import (
    AnnotationError,
    Box,
    Category,
    Object,
    Region,
    Relation,
    Scene,
    xywh_to_xyxy,
)


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


def synset_of(row: dict) -> str | None:
    synsets = row.get("synsets")
    synset = synsets[0] if isinstance(synsets, list) and synsets else None
    return intern(synset) if isinstance(synset, str) and synset else None


def listed_id(row: Any, objects: dict) -> Any:
    """The row's ``object_id`` when that object is already kept (the common case), else None."""
    oid = row.get("object_id") if type(row) is dict else None
    return oid if oid is not None and oid in objects else None


def at(where) -> str:
    return where if isinstance(where, str) else " ".join(map(str, where))


def image_path(image_dir: Path, image_id: Any, info: dict) -> str:
    """The image's file: ``file_name``, else the last two parts of its url (or the last
    one) under ``image_dir``, else ``VG_100K*/<id>.jpg``; the first that exists, else the
    first candidate. Strings are built directly (as pathlib would) in the common case."""
    if isinstance(info.get("file_name"), str):
        return str(image_dir / info["file_name"])
    url = info.get("url")
    if isinstance(url, str) and url.strip():
        parts = url.strip().rstrip("/").split("/")
        a, b = parts[-2] if len(parts) > 1 else "", parts[-1]
        if a and b and a != "." and b != ".":  # plain names: pathlib's string, no pathlib
            base = str(image_dir)
            base = "" if base == "." else base if base.endswith("/") else base + "/"
            candidates = [f"{base}{a}/{b}", f"{base}{b}"]
        else:
            candidates = [str(image_dir / parts[-1])]
            if len(parts) > 1:
                candidates.insert(0, str(image_dir / parts[-2] / parts[-1]))
    else:
        candidates = [str(image_dir / d / f"{image_id}.jpg") for d in ("VG_100K", "VG_100K_2", "")]
    return next((p for p in candidates if _is_file(p)), candidates[0])


def _is_file(path: str) -> bool:
    """``Path(path).is_file()`` without building the Path (the same errors are ignored)."""
    try:
        return S_ISREG(os.stat(path).st_mode)
    except OSError as e:
        if e.errno not in (ENOENT, ENOTDIR, EBADF, ELOOP):
            raise
        return False
    except ValueError:
        return False


def categories(scenes: list[Scene]) -> list[Category]:
    """One category per object name, sorted by name (ids from 1), with the synset most of
    its objects carry (the first seen among equals); sets each object's ``category_id``."""
    objects = list(chain.from_iterable(s.objects for s in scenes))
    best: dict[str, tuple[str, int] | None] = {}
    for (name, synset), n in Counter(map(attrgetter("category", "synset"), objects)).items():
        if not synset:
            best.setdefault(name, None)
        elif best.get(name) is None or n > best[name][1]:
            best[name] = (synset, n)
    cats = [
        Category(i + 1, name, synset=best[name][0] if best[name] else None)
        for i, name in enumerate(sorted(best))
    ]
    ids = {c.name: c.id for c in cats}
    for o in objects:
        o.category_id = ids[o.category]
    return cats


@dataclass
class Image:
    """What is gathered for one image before it becomes a Scene."""

    width: int = 0
    height: int = 0
    info: dict = field(default_factory=dict)
    objects: dict[Any, Object] = field(default_factory=dict)
    raw_boxes: dict[Any, Box] = field(default_factory=dict)  # objects.json only, then freed
    rejected: set = field(default_factory=set)
    relations: list[Relation] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)


def read_image_data(path: Path, required: bool, images: dict[Any, Image]) -> bool:
    """Fill ``images`` from image_data.json; False when it is absent (and not required)."""
    if not path.is_file():
        if required:
            raise FileNotFoundError(
                f"{path} not found: image_data.json is needed for image sizes "
                "(pass require_image_data=False to read without sizes; boxes are then "
                "not clipped to the image)"
            )
        return False
    for i, row in enumerate(iter_json_array(path)):
        require(row, ("width", "height"), path, i)
        image_id = first_key(row, ("image_id", "id"), path, i)
        w, h = row["width"], row["height"]
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (w, h)):
            raise AnnotationError(path, i, "width and height must be numbers")
        images[image_id] = Image(int(w), int(h), row)
    return True
