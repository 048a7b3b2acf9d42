"""RefCOCO / RefCOCO+ / RefCOCOg in the refer-toolkit layout.

``root/<dataset>/refs(<split_by>).p`` is a pickle of ref records and
``root/<dataset>/instances.json`` holds the COCO 2014 images, annotations and categories
of the referred images. One Scene per image; its objects are all instances of the image
and its refs point at them through ``ann_id``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scalar.data.readers.common import (
    image_present,
    load_json,
    load_pickle,
    malformed,
    require,
    require_list,
)
from scalar.data.readers.geometry import add_object_geometry, image_geometry
from scalar.data.scene import (
    AnnotationError,
    Category,
    Corpus,
    ImageInfo,
    Object,
    RefExpr,
    Scene,
    Skips,
    check_box,
    xywh_to_xyxy,
)

# The combinations the refer toolkit ships; others are read when their pickle exists.
KNOWN_SPLIT_BYS = {
    "refcoco": ("unc", "google"),
    "refcoco+": ("unc",),
    "refcocog": ("google", "umd"),
}


def _refs_file(root: Path, dataset: str, split_by: str) -> Path:
    folder = root / dataset
    path = folder / f"refs({split_by}).p"
    if path.is_file():
        return path
    if folder.is_dir():
        present = sorted(p.name for p in folder.iterdir())
        where = f"files in {folder}: {present}"
    else:
        present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        where = f"no folder {folder} (entries in {root}: {present})"
    known = KNOWN_SPLIT_BYS.get(dataset)
    hint = f"; {dataset} ships split_by {list(known)}" if known else ""
    raise FileNotFoundError(f"refs file not found: {path} ({where}{hint})")


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _read_instances(path: Path, skips: Skips) -> tuple[dict, dict, dict[int, Category]]:
    """``(images by id, annotations by id, categories by id)`` from a COCO-style file;
    rows that break the schema are counted as ``malformed_row`` (``malformed``)."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(path, "top level", "expected an object with images/annotations")
    categories: dict[int, Category] = {}
    for i, c in enumerate(require_list(data, "categories", path)):
        try:
            require(c, ("id", "name"), path, f"categories[{i}]")
        except AnnotationError as err:
            malformed(err, skips)
            continue
        categories[c["id"]] = Category(c["id"], str(c["name"]), c.get("supercategory"))
    images: dict[Any, dict] = {}
    for i, im in enumerate(require_list(data, "images", path)):
        try:
            require(im, ("id", "width", "height"), path, f"images[{i}]")
            if not (_number(im["width"]) and _number(im["height"])):
                raise AnnotationError(path, f"images[{i}]", "width and height must be numbers")
        except AnnotationError as err:
            malformed(err, skips)
            continue
        images[im["id"]] = im
    anns: dict[Any, dict] = {}
    for i, a in enumerate(require_list(data, "annotations", path)):
        try:
            require(a, ("id", "image_id", "bbox", "category_id"), path, f"annotations[{i}]")
            bbox = a["bbox"]
            if not (isinstance(bbox, list | tuple) and len(bbox) == 4 and all(map(_number, bbox))):
                raise AnnotationError(
                    path, f"annotations[{i}]", f"bbox must be 4 numbers: {bbox!r}"
                )
        except AnnotationError as err:
            malformed(err, skips)
            continue
        anns[a["id"]] = a
    return images, anns, categories


def _sentences(ref: dict, path: Path, index: int) -> list[str]:
    sents = ref["sentences"]
    if not isinstance(sents, list):
        raise AnnotationError(path, index, "'sentences' must be a list")
    out = []
    for j, s in enumerate(sents):
        text = s.get("sent", s.get("raw")) if isinstance(s, dict) else None
        if not isinstance(text, str):
            raise AnnotationError(path, f"{index} sentence {j}", "needs a 'sent' or 'raw' string")
        if text.strip():
            out.append(text.strip())
    return out


def _make_object(ann: dict, image: dict, cats: dict[int, Category], skips: Skips) -> Object | None:
    cat = cats.get(ann["category_id"])
    if cat is None:
        skips.add("unknown_category", f"annotation {ann['id']} category {ann['category_id']}")
        return None
    box = check_box(
        xywh_to_xyxy(ann["bbox"]), image["width"], image["height"], skips, f"annotation {ann['id']}"
    )
    if box is None:
        return None
    return Object(
        id=ann["id"],
        category=cat.name,
        box=box,
        category_id=cat.id,
        supercategory=cat.supercategory,
        mask=ann.get("segmentation"),
        iscrowd=bool(ann.get("iscrowd", 0)),
    )


def read_refcoco(
    root: str | Path,
    dataset: str = "refcoco",
    split_by: str = "unc",
    splits: Iterable[str] | None = None,
    image_dir: str | Path | None = None,
    image_pattern: str = "COCO_train2014_{image_id:012d}.jpg",
    check_images: bool = True,
) -> Corpus:
    """Read one refer-toolkit dataset/split-by into a Corpus (see the module docstring).

    ``splits`` keeps only refs of those splits, and only images that have such refs.
    ``image_pattern`` is formatted with ``image_id`` (and ``file_name`` from instances.json).
    """
    root = Path(root)
    refs_path = _refs_file(root, dataset, split_by)
    inst_path = root / dataset / "instances.json"
    image_dir = Path(image_dir) if image_dir is not None else root / "images"
    wanted = None if splits is None else {splits} if isinstance(splits, str) else set(splits)
    skips = Skips()

    images, anns, cats = _read_instances(inst_path, skips)
    refs = load_pickle(refs_path)
    if not isinstance(refs, list):
        raise AnnotationError(refs_path, "top level", f"expected a list, got {type(refs).__name__}")

    refs_by_image: dict[Any, list[RefExpr]] = {}
    seen: set = set()
    for i, r in enumerate(refs):
        try:
            require(r, ("ref_id", "ann_id", "image_id", "split", "sentences"), refs_path, i)
            split = str(r["split"])
            if wanted is not None and split not in wanted:
                continue
            sentences = _sentences(r, refs_path, i)
        except AnnotationError as err:
            malformed(err, skips)
            continue
        if r["ref_id"] in seen:
            skips.add("duplicate_ref_id", f"ref {r['ref_id']}")
            continue
        seen.add(r["ref_id"])
        ann = anns.get(r["ann_id"])
        if ann is None:
            skips.add("ref_unknown_annotation", f"ref {r['ref_id']} ann {r['ann_id']}")
            continue
        if ann["image_id"] not in images:
            skips.add("ref_unknown_image", f"ref {r['ref_id']} image {ann['image_id']}")
            continue
        if ann["image_id"] != r["image_id"]:
            skips.add("ref_image_mismatch", f"ref {r['ref_id']} image {r['image_id']}")
            continue
        if not sentences:
            skips.add("ref_without_sentences", f"ref {r['ref_id']}")
            continue
        ref = RefExpr(r["ref_id"], r["ann_id"], sentences, split, split_by, dataset)
        refs_by_image.setdefault(ann["image_id"], []).append(ref)

    anns_by_image: dict[Any, list[dict]] = {}
    for a in anns.values():
        if a["image_id"] in images:
            anns_by_image.setdefault(a["image_id"], []).append(a)
        else:
            skips.add("unknown_image", f"annotation {a['id']} image {a['image_id']}")

    image_ids = sorted(images) if wanted is None else sorted(refs_by_image)
    scenes = []
    for image_id in image_ids:
        im = images[image_id]
        try:
            name = image_pattern.format(image_id=image_id, file_name=im.get("file_name", ""))
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"image_pattern {image_pattern!r} fails on image {image_id!r}: {e}"
            ) from None
        path = image_dir / name
        scene_refs = refs_by_image.get(image_id, [])
        if not image_present(path, skips, check_images):
            if scene_refs:
                skips.add("refs_of_missing_images", f"image {image_id}", n=len(scene_refs))
            continue
        objects = [
            o for a in anns_by_image.get(image_id, []) if (o := _make_object(a, im, cats, skips))
        ]
        kept = {o.id for o in objects}
        for ref in scene_refs:
            if ref.object_id not in kept:
                skips.add("ref_object_dropped", f"ref {ref.ref_id} ann {ref.object_id}")
        scene_refs = [ref for ref in scene_refs if ref.object_id in kept]
        split_set = {ref.split for ref in scene_refs}
        scene = Scene(
            image=ImageInfo(image_id, str(path), int(im["width"]), int(im["height"])),
            objects=objects,
            refs=scene_refs,
            split=split_set.pop() if len(split_set) == 1 else None,
            meta={
                "dataset": dataset,
                "split_by": split_by,
                **image_geometry(im, path, skips, f"image {image_id}"),
            },
        )
        if "geometry" in scene.meta:
            for a in anns_by_image.get(image_id, []):
                if a["id"] in kept:
                    add_object_geometry(scene, a, skips, f"annotation {a['id']}")
        scenes.append(scene)
    return Corpus(
        name=f"{dataset}({split_by})",
        scenes=scenes,
        categories=sorted(cats.values(), key=lambda c: c.id),
        skips=skips,
        meta={
            "dataset": dataset,
            "split_by": split_by,
            "splits": sorted(wanted) if wanted else None,
        },
    )
