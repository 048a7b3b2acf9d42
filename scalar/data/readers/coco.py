"""COCO instances reader (2014 and 2017) and the instances-JSON core that LVIS reuses.

Images are never decoded here. Boxes become float pixel ``xyxy`` via ``check_box``;
masks are kept exactly as stored (polygons, uncompressed RLE, compressed RLE) and
rasterised on demand with :func:`mask_to_array`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from scalar.data.readers.common import image_present, load_json, malformed, require, require_list
from scalar.data.readers.geometry import add_object_geometry, image_geometry
from scalar.data.scene import (
    AnnotationError,
    Category,
    Corpus,
    ImageInfo,
    Object,
    Scene,
    Skips,
    check_box,
    xywh_to_xyxy,
)

ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox")
IMAGE_KEYS = ("id", "width", "height")
CATEGORY_KEYS = ("id", "name")

# hooks a format plugs into read_instances
ImageFile = Callable[[dict, Path, str], str]  # (image row, file, where) -> path under image_dir
MakeCategory = Callable[[dict, Path, str], Category]  # (category row, file, where)
SceneMeta = Callable[[dict, dict[int, Category], Path, str, Skips], dict]


def mask_to_array(mask: Any, height: int, width: int) -> np.ndarray:
    """Rasterise a COCO-style mask to a ``bool[height, width]`` array.

    Accepts a list of polygons ``[[x, y, ...], ...]`` (merged into one mask), an
    uncompressed RLE ``{"size": [h, w], "counts": [int, ...]}`` or a compressed RLE
    whose counts are a string or bytes.
    """
    if isinstance(mask, list):
        if not mask:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(mask, height, width))
    elif isinstance(mask, dict) and "counts" in mask and "size" in mask:
        if [int(v) for v in mask["size"]] != [int(height), int(width)]:
            raise ValueError(f"RLE size {list(mask['size'])} differs from image {[height, width]}")
        if isinstance(mask["counts"], list):
            rle = mask_utils.frPyObjects(mask, height, width)
        else:
            rle = mask
    else:
        raise TypeError(f"not a polygon list or RLE dict: {type(mask).__name__}")
    return np.ascontiguousarray(mask_utils.decode(rle), dtype=bool)


def _is_id(v: Any) -> bool:
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _id_key(v: int | str) -> tuple[int, int | str]:
    return (0, v) if isinstance(v, int) else (1, str(v))


def check_mask(seg: Any, height: int, width: int, skips: Skips, where: str) -> Any:
    """The segmentation as stored when it is usable, else ``None`` (counted).

    Polygons with an odd or too small (< 3 points) coordinate list, or with
    non-numbers, are dropped one by one (``invalid_polygon``); an RLE without
    ``size``/``counts`` or sized unlike its image counts as ``invalid_mask``.
    """
    if seg is None or (isinstance(seg, list) and not seg):
        return None
    if isinstance(seg, list):
        good = [
            p
            for p in seg
            if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(map(_is_number, p))
        ]
        if len(good) < len(seg):
            skips.add("invalid_polygon", where, n=len(seg) - len(good))
        if not good:
            return None
        return seg if len(good) == len(seg) else good
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if (
            isinstance(size, list)
            and len(size) == 2
            and isinstance(counts, (list, str, bytes))
            and [size[0], size[1]] == [height, width]
        ):
            return seg
    skips.add("invalid_mask", where)
    return None


def annotation_to_object(
    row: dict, category: Category, image: ImageInfo, skips: Skips, where: str
) -> Object | None:
    """One instance annotation as an ``Object``; ``None`` when its box must be dropped."""
    box = check_box(xywh_to_xyxy(row["bbox"]), image.width, image.height, skips, where)
    if box is None:
        return None
    return Object(
        id=row["id"],
        category=category.name,
        box=box,
        category_id=category.id,
        supercategory=category.supercategory,
        synset=category.synset,
        mask=check_mask(row.get("segmentation"), image.height, image.width, skips, where),
        iscrowd=bool(row.get("iscrowd", 0)),
    )


def _categories(rows: list, path: Path, make: MakeCategory, skips: Skips) -> dict[int, Category]:
    cats: dict[int, Category] = {}
    for i, row in enumerate(rows):
        where = f"categories[{i}]"
        try:
            _check_category_row(row, path, where)
            if row["id"] in cats:
                skips.add("duplicate_category_id", f"{where} id {row['id']}")
                continue
            cats[row["id"]] = make(row, path, where)
        except AnnotationError as err:
            malformed(err, skips)  # its annotations count as unknown_category
    return cats


def _check_category_row(row: Any, path: Path, where: str) -> None:
    require(row, CATEGORY_KEYS, path, where)
    if not isinstance(row["id"], int) or isinstance(row["id"], bool):
        raise AnnotationError(path, where, f"category id must be an integer, got {row['id']!r}")
    if not isinstance(row["name"], str):
        raise AnnotationError(path, where, f"category name must be a string, got {row['name']!r}")


def _check_image_row(row: Any, path: Path, where: str) -> None:
    require(row, IMAGE_KEYS, path, where)
    if not _is_id(row["id"]):
        raise AnnotationError(path, where, f"image id must be an integer or string: {row['id']!r}")
    for k in ("width", "height"):
        v = row[k]
        if not _is_number(v) or not math.isfinite(v) or v <= 0 or v != int(v):
            raise AnnotationError(path, where, f"'{k}' must be a positive integer, got {v!r}")


def _check_annotation_row(row: Any, path: Path, where: str) -> None:
    require(row, ANNOTATION_KEYS, path, where)
    for k in ("id", "image_id"):
        if not _is_id(row[k]):
            raise AnnotationError(path, where, f"'{k}' must be an integer or string: {row[k]!r}")
    bbox = row["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox)):
        raise AnnotationError(path, where, f"'bbox' must be 4 numbers [x, y, w, h], got {bbox!r}")


def read_instances(
    annotation_file: str | Path,
    image_dir: str | Path,
    *,
    split: str | None,
    check_images: bool,
    name: str,
    fmt: str,
    image_file: ImageFile,
    make_category: MakeCategory,
    scene_meta: SceneMeta | None = None,
) -> Corpus:
    """Read a COCO-layout instances JSON (``images``, ``annotations``, ``categories``).

    Format specifics come in as hooks: where an image lives under ``image_dir``, how a
    category row becomes a ``Category``, and per-image metadata for ``Scene.meta``.
    Counted skips: ``duplicate_category_id``, ``duplicate_image_id``, ``missing_image``
    (scene dropped; its rows counted as ``annotations_of_missing_images``),
    ``duplicate_annotation_id``, ``unknown_image``, ``unknown_category``, and those of
    ``check_box`` and ``check_mask``; rows that break the schema count as ``malformed_row``.
    """
    path = Path(annotation_file)
    data = load_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(path, "top level", f"expected an object, got {type(data).__name__}")
    rows = {k: require_list(data, k, path) for k in ("images", "annotations", "categories")}
    skips = Skips()
    cats = _categories(rows["categories"], path, make_category, skips)

    scenes: dict[int | str, Scene] = {}
    missing: set[int | str] = set()
    for i, row in enumerate(rows["images"]):
        where = f"images[{i}]"
        try:
            _check_image_row(row, path, where)
            iid = row["id"]
            if iid in scenes or iid in missing:
                skips.add("duplicate_image_id", f"{where} id {iid}")
                continue
            image_path = str(Path(image_dir) / image_file(row, path, where))
            if not image_present(image_path, skips, check_images):
                missing.add(iid)
                continue
            meta = scene_meta(row, cats, path, where, skips) if scene_meta else {}
            meta.update(image_geometry(row, image_path, skips, where))
        except AnnotationError as err:
            malformed(err, skips)  # its annotations count as unknown_image
            continue
        w, h = int(row["width"]), int(row["height"])
        info = ImageInfo(id=iid, path=image_path, width=w, height=h)
        scenes[iid] = Scene(image=info, split=split, meta=meta)

    seen: set[int | str] = set()
    for i, row in enumerate(rows["annotations"]):
        where = f"annotations[{i}]"
        try:
            _check_annotation_row(row, path, where)
        except AnnotationError as err:
            malformed(err, skips)
            continue
        aid, iid, cid = row["id"], row["image_id"], row["category_id"]
        if aid in seen:
            skips.add("duplicate_annotation_id", f"{where} id {aid}")
            continue
        seen.add(aid)
        if iid in missing:
            skips.add("annotations_of_missing_images", f"{where} image {iid}")
            continue
        scene = scenes.get(iid)
        if scene is None:
            skips.add("unknown_image", f"{where} image_id {iid}")
            continue
        if cid not in cats:
            skips.add("unknown_category", f"{where} category_id {cid}")
            continue
        obj = annotation_to_object(row, cats[cid], scene.image, skips, where)
        if obj is not None:
            scene.objects.append(obj)
            if "geometry" in scene.meta:
                add_object_geometry(scene, row, skips, where)

    return Corpus(
        name=name,
        scenes=[scenes[k] for k in sorted(scenes, key=_id_key)],
        categories=[cats[k] for k in sorted(cats)],
        skips=skips,
        meta={"format": fmt, "annotation_file": str(path)},
    )


def _coco_image_file(row: dict, path: Path, where: str) -> str:
    name = row.get("file_name")
    if not isinstance(name, str) or not name:
        raise AnnotationError(path, where, "missing key(s) ['file_name']")
    return name


def _coco_category(row: dict, path: Path, where: str) -> Category:
    return Category(id=row["id"], name=row["name"], supercategory=row.get("supercategory"))


def read_coco(
    annotation_file: str | Path,
    image_dir: str | Path,
    split: str | None = None,
    check_images: bool = True,
    name: str = "coco",
) -> Corpus:
    """Read COCO instances (2014 or 2017) into a ``Corpus`` of scenes sorted by image id.

    Image path is ``image_dir/file_name``. Bad rows are counted in ``Corpus.skips``
    (see ``read_instances``); a malformed file raises ``AnnotationError``.
    """
    return read_instances(
        annotation_file,
        image_dir,
        split=split,
        check_images=check_images,
        name=name,
        fmt="coco",
        image_file=_coco_image_file,
        make_category=_coco_category,
    )
