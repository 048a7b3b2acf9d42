"""LVIS reader (v1 and v0.5), built on the COCO instances core.

v1 images carry no ``file_name``: the path is derived from ``coco_url`` as
``image_dir/<folder>/<basename>`` (``train2017``/``val2017``, the usual detectron2
layout). v0.5 images carry ``file_name`` (``COCO_val2014_...``): ``image_dir/file_name``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from scalar.data.readers.coco import read_instances
from scalar.data.scene import AnnotationError, Category, Corpus, Skips

FREQUENCIES = ("r", "c", "f")
IMAGE_LISTS = {  # image key -> Scene.meta key of the names
    "neg_category_ids": "neg_categories",
    "not_exhaustive_category_ids": "not_exhaustive_categories",
}


def lvis_image_file(row: dict, path: Path, where: str) -> str:
    """Path of an LVIS image relative to ``image_dir`` (``file_name`` wins when present)."""
    name = row.get("file_name")
    if isinstance(name, str) and name:
        return name
    url = row.get("coco_url")
    if not isinstance(url, str) or not url:
        raise AnnotationError(path, where, "neither 'file_name' nor 'coco_url' to locate the image")
    parts = PurePosixPath(urlparse(url).path).parts
    if not parts or parts[-1] == "/":
        raise AnnotationError(path, where, f"'coco_url' has no file name: {url!r}")
    folder = [p for p in parts[:-1] if p != "/"][-1:]
    return str(PurePosixPath(*folder, parts[-1]))


class _CategoryRows:
    """Makes LVIS categories and keeps what ``Category`` has no field for."""

    def __init__(self, synset_to_supercategory: dict[str, str] | None):
        self.sup = synset_to_supercategory or {}
        self.synonyms: dict[str, list[str]] = {}
        self.definitions: dict[str, str] = {}

    def __call__(self, row: dict, path: Path, where: str) -> Category:
        freq = row.get("frequency")
        if freq is not None and freq not in FREQUENCIES:
            raise AnnotationError(path, where, f"frequency must be r, c or f, got {freq!r}")
        synset = row.get("synset")
        if isinstance(row.get("synonyms"), list):
            self.synonyms[row["name"]] = [str(v) for v in row["synonyms"]]
        if isinstance(row.get("def"), str):
            self.definitions[row["name"]] = row["def"]
        sup = self.sup.get(synset) if synset else None
        return Category(
            id=row["id"], name=row["name"], supercategory=sup, synset=synset, frequency=freq
        )


def _scene_meta(
    row: dict, cats: dict[int, Category], path: Path, where: str, skips: Skips
) -> dict[str, Any]:
    """Negative and not-exhaustive category ids of an image, and their names."""
    meta: dict[str, Any] = {}
    for key, names_key in IMAGE_LISTS.items():
        ids = row.get(key, [])
        if not isinstance(ids, list):
            raise AnnotationError(path, where, f"'{key}' must be a list, got {type(ids).__name__}")
        known = [c for c in ids if c in cats]
        if len(known) < len(ids):
            bad = [c for c in ids if c not in cats]
            skips.add(f"unknown_category_in_{key}", f"{where} {bad}", n=len(bad))
        meta[key] = known
        meta[names_key] = [cats[c].name for c in known]
    return meta


def read_lvis(
    annotation_file: str | Path,
    image_dir: str | Path,
    split: str | None = None,
    check_images: bool = True,
    name: str = "lvis",
    synset_to_supercategory: dict[str, str] | None = None,
) -> Corpus:
    """Read LVIS v1 or v0.5 annotations into a ``Corpus`` (scenes sorted by image id).

    Categories carry synset and frequency; ``synset_to_supercategory`` (optional) fills
    the supercategory LVIS lacks. ``Scene.meta`` holds ``neg_category_ids``,
    ``not_exhaustive_category_ids`` and their names (``neg_categories``,
    ``not_exhaustive_categories``). ``Corpus.meta`` holds ``synonyms`` and
    ``definitions`` by category name, and ``version`` (``v0.5`` when images carry
    ``file_name``, else ``v1``). Skips and errors are those of the COCO reader.
    """
    path = Path(annotation_file)
    categories = _CategoryRows(synset_to_supercategory)
    with_file_name: list[bool] = []

    def image_file(row: dict, path: Path, where: str) -> str:
        with_file_name.append(bool(row.get("file_name")))
        return lvis_image_file(row, path, where)

    corpus = read_instances(
        path,
        image_dir,
        split=split,
        check_images=check_images,
        name=name,
        fmt="lvis",
        image_file=image_file,
        make_category=categories,
        scene_meta=_scene_meta,
    )
    corpus.meta["version"] = "v0.5" if with_file_name and all(with_file_name) else "v1"
    corpus.meta["synonyms"] = categories.synonyms
    corpus.meta["definitions"] = categories.definitions
    return corpus
