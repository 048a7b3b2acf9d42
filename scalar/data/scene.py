"""The one scene schema every corpus is read into.

Readers turn annotation files into these plain records without decoding images;
images are decoded later, in the Dataset. Boxes are float pixels, ``(x1, y1, x2, y2)``
with ``x2 > x1`` and ``y2 > y1`` (COCO's ``[x, y, w, h]`` is converted on read).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Box = tuple[float, float, float, float]


class AnnotationError(ValueError):
    """A malformed annotation file: the message names the file and the row."""

    def __init__(self, path: str | Path, row: Any, problem: str):
        self.path, self.row, self.problem = str(path), row, problem
        super().__init__(f"{path}: row {row}: {problem}")


@dataclass
class ImageInfo:
    """An image on disk, never decoded by a reader."""

    id: int | str
    path: str
    width: int
    height: int


@dataclass
class Category:
    """A category of a corpus, with its place in the taxonomy when known."""

    id: int
    name: str
    supercategory: str | None = None
    synset: str | None = None
    frequency: str | None = None  # LVIS: r | c | f
    held_out: bool = False  # synthetic: never in training annotations


@dataclass
class Object:
    """An annotated object instance."""

    id: int | str
    category: str
    box: Box
    category_id: int | None = None
    supercategory: str | None = None
    synset: str | None = None
    mask: Any = None  # list of polygons [[x, y, ...], ...] or an RLE dict {size, counts}
    attributes: list[str] = field(default_factory=list)
    iscrowd: bool = False


@dataclass
class Relation:
    """``subject predicate object``, endpoints are object ids of the same scene."""

    subject: int | str
    predicate: str
    object: int | str


@dataclass
class Region:
    """A described region (Visual Genome style)."""

    id: int | str
    box: Box
    text: str


@dataclass
class RefExpr:
    """Referring expressions of one object."""

    ref_id: int | str
    object_id: int | str
    sentences: list[str]
    split: str
    split_by: str | None = None
    dataset: str | None = None


@dataclass
class Scene:
    """Everything known about one image."""

    image: ImageInfo
    objects: list[Object] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    refs: list[RefExpr] = field(default_factory=list)
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def object_by_id(self) -> dict[int | str, Object]:
        return {o.id: o for o in self.objects}


# reasons counted once per image file, however many readers or loaders meet it
PER_FILE = frozenset({"missing_image", "corrupt_image", "empty_image", "image_too_large"})


class Skips:
    """Counts skipped (or repaired) rows by reason and keeps a few examples of each.

    Reasons of ``PER_FILE`` count distinct files (``detail`` is the path): two readers
    of one split that both miss an image count it once. A skip can be attributed to an
    image (``image=``, or the reader's current ``scope``) so that a corpus read whole
    and then split (``merge.select_split``) hands each split the skips of its own images
    (:meth:`restrict`).
    """

    def __init__(self, max_examples: int = 3):
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.max_examples = max_examples
        self.scope: Any = None  # image id the skips being added belong to (None: unknown)
        self.files: dict[str, dict[str, Any]] = {}  # PER_FILE reason -> {path: image id}
        self.by_image: dict[Any, Counter[str]] = {}  # other reasons, attributed ones

    def add(self, reason: str, detail: str = "", n: int = 1, image: Any = None) -> None:
        image = self.scope if image is None else image
        if reason in PER_FILE and detail:
            seen = self.files.setdefault(reason, {})
            if detail in seen:
                return
            seen[detail], n = image, 1
        elif image is not None and n:
            self.by_image.setdefault(image, Counter())[reason] += n
        self.counts[reason] += n
        ex = self.examples.setdefault(reason, [])
        if detail and len(ex) < self.max_examples:
            ex.append(detail)

    def update(self, other: Skips) -> None:
        for reason, files in other.files.items():
            for path, image in files.items():
                self.add(reason, path, image=image)
        for image, counts in other.by_image.items():
            mine = self.by_image.setdefault(image, Counter())
            mine.update(counts)
        for reason, n in other.counts.items():
            if reason in other.files:
                n -= len(other.files[reason])  # counted above, path by path
            self.counts[reason] += n
            for d in other.examples.get(reason, []):
                ex = self.examples.setdefault(reason, [])
                if d not in ex and len(ex) < self.max_examples:
                    ex.append(d)

    def restrict(self, keep: Any, unattributed: bool) -> Skips:
        """The skips of the images ``keep(image_id)`` accepts, plus (``unattributed``)
        those that belong to no known image."""
        out = Skips(self.max_examples)
        for reason, files in self.files.items():
            for path, image in files.items():
                if (image is None and unattributed) or (image is not None and keep(image)):
                    out.add(reason, path, image=image)
        attributed: Counter[str] = Counter()
        for image, counts in self.by_image.items():
            attributed.update(counts)
            if keep(image):
                out.by_image[image] = Counter(counts)
                out.counts.update(counts)
        for reason, n in self.counts.items():
            rest = n - attributed[reason] - len(self.files.get(reason, {}))
            if unattributed and rest > 0:
                out.counts[reason] += rest
        for reason in out.counts:
            if reason not in out.files:
                out.examples[reason] = list(self.examples.get(reason, []))
        return out

    def __bool__(self) -> bool:
        return bool(self.counts)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def report(self) -> str:
        if not self.counts:
            return "no rows skipped"
        lines = []
        for reason, n in sorted(self.counts.items()):
            ex = "; ".join(self.examples.get(reason, []))
            lines.append(f"  {reason}: {n}" + (f"  (e.g. {ex})" if ex else ""))
        return "skipped or repaired rows:\n" + "\n".join(lines)


def xywh_to_xyxy(b: list[float] | tuple[float, ...]) -> Box:
    x, y, w, h = (float(v) for v in b)
    return (x, y, x + w, y + h)


def check_box(box: Box, width: float, height: float, skips: Skips, where: str) -> Box | None:
    """Validate a pixel xyxy box against its image.

    Returns the box (clipped to the image when it overlaps it partly) or ``None`` when it
    must be dropped. Every drop and every clip is counted in ``skips``:
    ``degenerate_box`` (non-finite, zero or negative size), ``box_outside_image`` (no
    overlap with the image), ``box_clipped`` (kept after clipping).
    """
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box) or x2 <= x1 or y2 <= y1:
        skips.add("degenerate_box", f"{where} {box}")
        return None
    if width > 0 and height > 0:
        cx1, cy1 = max(0.0, x1), max(0.0, y1)
        cx2, cy2 = min(float(width), x2), min(float(height), y2)
        if cx2 <= cx1 or cy2 <= cy1:
            skips.add("box_outside_image", f"{where} {box}")
            return None
        if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
            skips.add("box_clipped", f"{where} {box}")
            return (cx1, cy1, cx2, cy2)
    return (float(x1), float(y1), float(x2), float(y2))


@dataclass
class Corpus:
    """What a reader returns: scenes, categories and the skip report."""

    name: str
    scenes: list[Scene]
    categories: list[Category] = field(default_factory=list)
    skips: Skips = field(default_factory=Skips)
    meta: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        """Counts of everything read, plus skips by reason (for ``validate``)."""
        return {
            "corpus": self.name,
            "images": len(self.scenes),
            "objects": sum(len(s.objects) for s in self.scenes),
            "refs": sum(len(s.refs) for s in self.scenes),
            "sentences": sum(len(r.sentences) for s in self.scenes for r in s.refs),
            "regions": sum(len(s.regions) for s in self.scenes),
            "relations": sum(len(s.relations) for s in self.scenes),
            "categories": len(self.categories),
            "skips": self.skips.as_dict(),
        }
