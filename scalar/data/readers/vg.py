"""Visual Genome (v1.2, and v1.0 key names) into Scenes.

Files in ``root``: image_data.json (image sizes and urls), objects.json, attributes.json
(optional), relationships.json and region_descriptions.json. Objects are keyed by their
object id within an image; attribute rows and relationship endpoints are merged onto them
and add the object when it is not listed in objects.json.

Files are streamed entry by entry (``jsonstream``, orjson) and well-formed rows take an
inlined fast path, so that the full corpus (100k images, 5M regions) reads in bounded
memory; unusual rows take the checked path, with the same results and errors. A large
region_descriptions.json is read by a helper process while this one reads the other files
(``vg_regions``), and the cyclic garbage collector is off while reading (millions of new
containers, no cycles).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from scalar.data.readers.common import image_present, malformed, require
from scalar.data.readers.jsonstream import iter_json_array
from scalar.data.readers.vg_regions import NAME, RegionJob, add_regions, region_records
from scalar.data.readers.vg_rows import (
    FLOATS,
    MISSING,
    at,
    categories,
    fast_box,
    first_key,
    image_path,
    inside,
    intern,
    listed_id,
    raw_box,
    read_image_data,
    row_attrs,
    row_names,
    synset_of,
)
from scalar.data.readers.vg_rows import (
    Image as _Image,
)
from scalar.data.scene import (
    AnnotationError,
    Corpus,
    ImageInfo,
    Object,
    Relation,
    Scene,
    Skips,
    check_box,
)


class _Reader:
    def __init__(self, root: Path, require_image_data: bool):
        self.root, self.skips = root, Skips()
        self.images: dict[Any, _Image] = {}
        self.known = read_image_data(root / "image_data.json", require_image_data, self.images)

    def entries(self, name: str, key: str):
        """Yield ``(image, rows, path, index)`` for each per-image entry of a file."""
        path = self.root / name
        for i, entry in enumerate(iter_json_array(path)):
            try:
                require(entry, (key,), path, i)
                image_id = first_key(entry, ("image_id", "id"), path, i)
                rows = entry[key]
                if not isinstance(rows, list):
                    raise AnnotationError(path, i, f"'{key}' must be a list")
            except AnnotationError as err:
                malformed(err, self.skips)  # the whole entry (one image's rows of this file)
                continue
            self.skips.scope = image_id  # skips of its rows belong to this image (its split)
            image = self.images.get(image_id)
            if image is None:
                if self.known:
                    self.skips.add("unknown_image", f"{name} image {image_id}")
                    continue
                image = self.images[image_id] = _Image()
            yield image, rows, path, i
        self.skips.scope = None

    def row(self, fn, *args):
        """``fn(*args)`` for one row; a row that breaks the schema is a counted skip."""
        try:
            return fn(*args)
        except AnnotationError as err:
            malformed(err, self.skips)
            return None

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
        image.objects[oid] = Object(oid, name, box, synset=synset_of(row))
        if listed:
            image.raw_boxes[oid] = raw
        return oid

    def read_objects(self) -> None:
        names_c: dict[str, str] = {}  # raw first name -> normalized, interned ("" if blank)
        synsets_c: dict[str, str] = {}  # raw first synset -> interned
        for image, rows, path, i in self.entries("objects.json", "objects"):
            objs, raws, rejected, w_, h_ = (image.objects, image.raw_boxes, image.rejected,
                                             image.width, image.height)  # fmt: skip
            fast = 0 < w_ < 8192 and 0 < h_ < 8192
            for j, row in enumerate(rows):
                if fast:  # a plain row inside its image: inline, anything else is checked
                    try:
                        x, y, w, h, names = row["x"], row["y"], row["w"], row["h"], row["names"]
                    except (KeyError, TypeError):
                        names = None
                    if (type(names) is list and names and type(names[0]) is str
                            and type(x) is int and type(y) is int and type(w) is int
                            and type(h) is int and 0 <= x and 0 <= y and 0 < w and 0 < h
                            and x + w <= w_ and y + h <= h_):  # fmt: skip
                        oid = row.get("object_id", MISSING)
                        if oid is MISSING:
                            oid = row.get("id", MISSING)
                        name = names_c.get(names[0])
                        if name is None:
                            name = names[0].strip().lower()
                            name = names_c[names[0]] = intern(name) if name else ""
                        if name and oid is not MISSING and oid not in objs and oid not in rejected:
                            syn = row.get("synsets")
                            if type(syn) is list and syn and type(syn[0]) is str and syn[0]:
                                synset = synsets_c.get(syn[0])
                                if synset is None:
                                    synset = synsets_c[syn[0]] = intern(syn[0])
                            else:
                                synset = synset_of(row)
                            box = (FLOATS[x], FLOATS[y], FLOATS[x + w], FLOATS[y + h])
                            objs[oid] = Object(oid, name, box, None, None, synset)
                            raws[oid] = box
                            continue
                self.row(self.add_object, image, row, path, (i, "object", j), True)
        for image in self.images.values():  # only objects.json rows are compared
            image.raw_boxes = {}

    def read_attributes(self) -> None:
        if not (self.root / "attributes.json").is_file():
            return
        cache: dict[str, str] = {}  # raw value -> normalized, interned ("" when blank)
        for image, rows, path, i in self.entries("attributes.json", "attributes"):
            objs = image.objects
            for j, row in enumerate(rows):
                oid = row.get("object_id") if type(row) is dict else None  # listed_id inline
                if oid is None or oid not in objs:
                    oid = self.row(
                        self.add_object, image, row, path, (i, "attribute row", j), False
                    )
                    if oid is None:
                        continue
                obj, values = objs[oid], row.get("attributes")
                if type(values) is not list:
                    if values:  # a string or mapping: as the checked path takes it
                        obj.attributes = row_attrs(obj.attributes + list(values))
                    continue
                out = list(obj.attributes)  # already normalized and unique
                for v in values:
                    if type(v) is str:
                        a = cache.get(v)
                        if a is None:
                            a = v.strip().lower()
                            a = cache[v] = intern(a) if v.strip() else ""
                        if a and a not in out:
                            out.append(a)
                obj.attributes = out

    def read_relationships(self) -> None:
        cache: dict[str, str] = {}  # raw predicate -> normalized, interned
        for image, rows, path, i in self.entries("relationships.json", "relationships"):
            objs, append = image.objects, image.relations.append
            for j, row in enumerate(rows):
                try:
                    sub, ob, p = row["subject"], row["object"], row["predicate"]
                except (KeyError, TypeError):
                    p = None
                if type(p) is str and type(sub) is dict and type(ob) is dict:
                    s, o = sub.get("object_id"), ob.get("object_id")  # listed_id inline
                    if s is not None and o is not None and s in objs and o in objs:
                        pred = cache.get(p)
                        if pred is None:
                            pred = cache[p] = intern(p.strip().lower())
                        if pred:
                            append(Relation(s, pred, o))
                            continue
                self.row(self._relation_checked, image, row, path, i, j)

    def _relation_checked(self, image: _Image, row: Any, path: Path, i: int, j: int) -> None:
        objs = image.objects
        if type(row) is not dict or not ("predicate" in row and "subject" in row
                                         and "object" in row):  # fmt: skip
            require(row, ("predicate", "subject", "object"), path, f"{i} relationship {j}")
        s, o = listed_id(row["subject"], objs), listed_id(row["object"], objs)
        if s is None:
            s = self.add_object(
                image, row["subject"], path, (i, "relationship", j, "subject"), False
            )
        if o is None:
            o = self.add_object(image, row["object"], path, (i, "relationship", j, "object"), False)
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

    def read_regions(self, job: RegionJob | None = None) -> None:
        """Regions from ``job``'s records when it has them, else read here."""
        records = job.records() if job is not None else None
        images = self.images
        if records is not None:
            for record in records:
                add_regions(images[record[0]].regions, record)
            self.skips.update(job.skips)
            return
        sizes = {k: (im.width, im.height) for k, im in images.items()}
        for record in region_records(self.root / NAME, sizes, self.known, self.skips):
            image = images.get(record[0])
            if image is None:  # no image_data.json: the image is new
                image = images[record[0]] = _Image()
            add_regions(image.regions, record)


def read_visual_genome(
    root: str | Path,
    image_dir: str | Path | None = None,
    check_images: bool = True,
    require_image_data: bool = True,
) -> Corpus:
    """Read a Visual Genome folder into a Corpus; images are never decoded."""
    enabled = gc.isenabled()
    gc.disable()  # millions of new containers, no cycles: collections would only cost time
    try:
        return _read(Path(root), image_dir, check_images, require_image_data)
    finally:
        if enabled:
            gc.enable()


def _read(root: Path, image_dir, check_images: bool, require_image_data: bool) -> Corpus:
    if not root.is_dir():
        raise FileNotFoundError(f"Visual Genome folder not found: {root}")
    image_dir = Path(image_dir) if image_dir is not None else root
    reader = _Reader(root, require_image_data)
    job = None
    if RegionJob.wanted(root, reader.known):  # regions need only sizes: read in parallel
        job = RegionJob(root, {k: (im.width, im.height) for k, im in reader.images.items()})
    try:
        reader.read_objects()
        reader.read_attributes()
        reader.read_relationships()
        reader.read_regions(job)
    finally:
        if job is not None:
            job.close()

    scenes = []
    for image_id in sorted(reader.images, key=lambda k: (str(type(k)), k)):
        im = reader.images.pop(image_id)  # freed as the scenes are built
        path = image_path(image_dir, image_id, im.info)
        reader.skips.scope = image_id
        present = image_present(path, reader.skips, check_images)
        reader.skips.scope = None
        if not present:
            continue
        meta = {"coco_id": im.info["coco_id"]} if im.info.get("coco_id") is not None else {}
        scenes.append(
            Scene(
                image=ImageInfo(image_id, path, im.width, im.height),
                objects=list(im.objects.values()),
                relations=im.relations,
                regions=im.regions,
                meta=meta,
            )
        )
    return Corpus(
        name="visual_genome",
        scenes=scenes,
        categories=categories(scenes),
        skips=reader.skips,
        meta={"root": str(root), "image_data": reader.known},
    )
