"""Visual Genome (v1.2, and v1.0 key names) into Scenes.

Files in ``root``: image_data.json (image sizes and urls), objects.json, attributes.json
(optional), relationships.json and region_descriptions.json. Objects are keyed by their
object id within an image; attribute rows and relationship endpoints are merged onto them
and add the object when it is not listed in objects.json.

Files are streamed entry by entry (``jsonstream``) and well-formed rows take a fast path,
so that the full corpus (100k images, 5M regions) reads in bounded memory; unusual rows
take the checked path, with the same results and errors.
"""

from __future__ import annotations

import numbers
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalar.data.readers.common import image_present, require
from scalar.data.readers.jsonstream import iter_json_array
from scalar.data.readers.vg_rows import (
    MISSING,
    at,
    fast_box,
    first_key,
    inside,
    intern,
    listed_id,
    raw_box,
    row_attrs,
    row_names,
)
from scalar.data.scene import (
    AnnotationError,
    Box,
    Category,
    Corpus,
    ImageInfo,
    Object,
    Region,
    Relation,
    Scene,
    Skips,
    check_box,
)


@dataclass
class _Image:
    """What is gathered for one image before it becomes a Scene."""

    width: int = 0
    height: int = 0
    info: dict = field(default_factory=dict)
    objects: dict[Any, Object] = field(default_factory=dict)
    raw_boxes: dict[Any, Box] = field(default_factory=dict)  # objects.json only, then freed
    rejected: set = field(default_factory=set)
    relations: list[Relation] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)


class _Reader:
    def __init__(self, root: Path, require_image_data: bool):
        self.root, self.skips = root, Skips()
        self.images: dict[Any, _Image] = {}
        self.known = self._read_image_data(require_image_data)

    def _read_image_data(self, required: bool) -> bool:
        path = self.root / "image_data.json"
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
            self.images[image_id] = _Image(int(w), int(h), row)
        return True

    def entries(self, name: str, key: str):
        """Yield ``(image, rows, path, index)`` for each per-image entry of a file."""
        path = self.root / name
        for i, entry in enumerate(iter_json_array(path)):
            require(entry, (key,), path, i)
            image_id = first_key(entry, ("image_id", "id"), path, i)
            rows = entry[key]
            if not isinstance(rows, list):
                raise AnnotationError(path, i, f"'{key}' must be a list")
            image = self.images.get(image_id)
            if image is None:
                if self.known:
                    self.skips.add("unknown_image", f"{name} image {image_id}")
                    continue
                image = self.images[image_id] = _Image()
            yield image, rows, path, i

    def add_object(self, image: _Image, row: dict, path: Path, where, listed: bool) -> Any:
        """Add (or find) the object of ``row``; returns its id, or None when dropped.

        ``where`` is the row's place: a string, or a tuple joined by spaces on use.
        """
        if type(row) is not dict:
            raise AnnotationError(path, at(where), f"expected an object, got {type(row).__name__}")
        oid = row["object_id"] if "object_id" in row else row.get("id", MISSING)
        if oid is MISSING:
            first_key(row, ("object_id", "id"), path, at(where))
        if oid in image.objects:
            if listed:
                raw = fast_box(row, ("x", "y", "w", "h"))
                if raw is None:
                    raw = raw_box(row, ("x", "y", "w", "h"), path, at(where))
                if raw != image.raw_boxes.get(oid):
                    self.skips.add("duplicate_object_id", f"{path.name} {at(where)} object {oid}")
            return oid
        if oid in image.rejected:
            return None
        raw = fast_box(row, ("x", "y", "w", "h"))
        if raw is None:
            raw = raw_box(row, ("x", "y", "w", "h"), path, at(where))
        names = row.get("names")
        if type(names) is list and names and type(names[0]) is str and names[0].strip():
            name = intern(names[0].strip().lower())
        else:
            names = row_names(row)
            if not names:
                self.skips.add("object_without_name", f"{path.name} {at(where)} object {oid}")
                image.rejected.add(oid)
                return None
            name = names[0]
        if inside(raw, image.width, image.height):
            box = raw
        else:
            box = check_box(raw, image.width, image.height, self.skips, f"{path.name} {at(where)}")
            if box is None:
                image.rejected.add(oid)
                return None
        synsets = row.get("synsets")
        synset = synsets[0] if isinstance(synsets, list) and synsets else None
        synset = intern(synset) if isinstance(synset, str) and synset else None
        image.objects[oid] = Object(oid, name, box, synset=synset)
        if listed:
            image.raw_boxes[oid] = raw
        return oid

    def read_objects(self) -> None:
        for image, rows, path, i in self.entries("objects.json", "objects"):
            for j, row in enumerate(rows):
                self.add_object(image, row, path, (i, "object", j), listed=True)
        for image in self.images.values():  # only objects.json rows are compared
            image.raw_boxes = {}

    def read_attributes(self) -> None:
        if not (self.root / "attributes.json").is_file():
            return
        for image, rows, path, i in self.entries("attributes.json", "attributes"):
            objs = image.objects
            for j, row in enumerate(rows):
                oid = listed_id(row, objs)
                if oid is None:
                    oid = self.add_object(image, row, path, (i, "attribute row", j), listed=False)
                if oid is not None:
                    obj = image.objects[oid]
                    obj.attributes = row_attrs(obj.attributes + list(row.get("attributes") or []))

    def read_relationships(self) -> None:
        for image, rows, path, i in self.entries("relationships.json", "relationships"):
            objs = image.objects
            for j, row in enumerate(rows):
                if type(row) is not dict or not ("predicate" in row and "subject" in row
                                                 and "object" in row):  # fmt: skip
                    require(row, ("predicate", "subject", "object"), path, f"{i} relationship {j}")
                s, o = listed_id(row["subject"], objs), listed_id(row["object"], objs)
                if s is None:
                    s = self.add_object(
                        image, row["subject"], path, (i, "relationship", j, "subject"), False
                    )
                if o is None:
                    o = self.add_object(
                        image, row["object"], path, (i, "relationship", j, "object"), False
                    )
                predicate = row["predicate"]
                predicate = intern(
                    (predicate if type(predicate) is str else str(predicate)).strip().lower()
                )
                if s is None or o is None:
                    self.skips.add("relation_endpoint_dropped", f"{path.name} {i} relationship {j}")
                elif not predicate:
                    self.skips.add("empty_predicate", f"{path.name} {i} relationship {j}")
                else:
                    image.relations.append(Relation(s, predicate, o))

    def read_regions(self) -> None:
        for image, rows, path, i in self.entries("region_descriptions.json", "regions"):
            w, h, regions = image.width, image.height, image.regions
            for j, row in enumerate(rows):
                raw = fast_box(row, ("x", "y", "width", "height")) if type(row) is dict else None
                phrase = row.get("phrase") if raw is not None else None
                rid = MISSING
                if raw is not None:
                    rid = row["region_id"] if "region_id" in row else row.get("id", MISSING)
                if rid is MISSING or type(phrase) is not str:
                    self._region_checked(image, row, path, i, j)
                    continue
                phrase = phrase.strip()
                if not phrase:
                    self.skips.add("empty_region_phrase", f"{path.name} {i} region {j}")
                elif inside(raw, w, h):
                    regions.append(Region(rid, raw, phrase))
                else:
                    box = check_box(raw, w, h, self.skips, f"{path.name} {i} region {j}")
                    if box is not None:
                        regions.append(Region(rid, box, phrase))

    def _region_checked(self, image: _Image, row: Any, path: Path, i: int, j: int) -> None:
        where = f"{i} region {j}"
        require(row, ("phrase",), path, where)
        rid = first_key(row, ("region_id", "id"), path, where)
        raw = raw_box(row, ("x", "y", "width", "height"), path, where)
        phrase = row["phrase"].strip() if isinstance(row["phrase"], str) else ""
        if not phrase:
            self.skips.add("empty_region_phrase", f"{path.name} {where}")
            return
        box = check_box(raw, image.width, image.height, self.skips, f"{path.name} {where}")
        if box is not None:
            image.regions.append(Region(rid, box, phrase))


def _image_path(image_dir: Path, image_id: Any, info: dict) -> Path:
    if isinstance(info.get("file_name"), str):
        return image_dir / info["file_name"]
    url = info.get("url")
    if isinstance(url, str) and url.strip():
        parts = url.strip().rstrip("/").split("/")
        candidates = [image_dir / parts[-2] / parts[-1], image_dir / parts[-1]]
        if len(parts) < 2:
            candidates = candidates[1:]
    else:
        candidates = [image_dir / d / f"{image_id}.jpg" for d in ("VG_100K", "VG_100K_2", "")]
    return next((p for p in candidates if p.is_file()), candidates[0])


def _categories(scenes: list[Scene]) -> list[Category]:
    synsets: dict[str, Counter] = {}
    for s in scenes:
        for o in s.objects:
            c = synsets.setdefault(o.category, Counter())
            if o.synset:
                c[o.synset] += 1
    cats = [
        Category(
            i + 1, name, synset=(synsets[name].most_common(1)[0][0] if synsets[name] else None)
        )
        for i, name in enumerate(sorted(synsets))
    ]
    ids = {c.name: c.id for c in cats}
    for s in scenes:
        for o in s.objects:
            o.category_id = ids[o.category]
    return cats


def read_visual_genome(
    root: str | Path,
    image_dir: str | Path | None = None,
    check_images: bool = True,
    require_image_data: bool = True,
) -> Corpus:
    """Read a Visual Genome folder into a Corpus; images are never decoded."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Visual Genome folder not found: {root}")
    image_dir = Path(image_dir) if image_dir is not None else root
    reader = _Reader(root, require_image_data)
    reader.read_objects()
    reader.read_attributes()
    reader.read_relationships()
    reader.read_regions()

    scenes = []
    for image_id in sorted(reader.images, key=lambda k: (str(type(k)), k)):
        im = reader.images.pop(image_id)  # freed as the scenes are built
        path = _image_path(image_dir, image_id, im.info)
        if not image_present(path, reader.skips, check_images):
            continue
        meta = {"coco_id": im.info["coco_id"]} if im.info.get("coco_id") is not None else {}
        scenes.append(
            Scene(
                image=ImageInfo(image_id, str(path), im.width, im.height),
                objects=list(im.objects.values()),
                relations=im.relations,
                regions=im.regions,
                meta=meta,
            )
        )
    return Corpus(
        name="visual_genome",
        scenes=scenes,
        categories=_categories(scenes),
        skips=reader.skips,
        meta={"root": str(root), "image_data": reader.known},
    )
