"""Combining corpora: join annotations of one image set, and pick a split of a corpus.

``merge_corpora`` joins by image id: the base corpus decides which images and objects
exist (e.g. RefCOCO objects and refs), the others add attributes, relations, region
descriptions and refs to them (e.g. Visual Genome with the same object ids).
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

from scalar.data.scene import Corpus, Scene, Skips

DEFAULT_FRACTIONS = {"train": 0.9, "val": 0.05, "test": 0.05}


def _merge_scene(base: Scene, other: Scene, skips: Skips, where: str) -> None:
    objects = base.object_by_id()
    for o in other.objects:
        mine = objects.get(o.id)
        if mine is None:
            skips.add("merge_unknown_object", f"{where} object {o.id}")
            continue
        mine.attributes = list(dict.fromkeys(mine.attributes + list(o.attributes)))
        mine.supercategory = mine.supercategory or o.supercategory
        mine.synset = mine.synset or o.synset
        if mine.mask is None and o.mask is not None:
            mine.mask = o.mask
    for r in other.relations:
        if r.subject in objects and r.object in objects:
            base.relations.append(copy.copy(r))
        else:
            skips.add("merge_unknown_object", f"{where} relation {r.subject}->{r.object}")
    known_regions = {r.id for r in base.regions}
    base.regions.extend(copy.copy(r) for r in other.regions if r.id not in known_regions)
    known_refs = {r.ref_id for r in base.refs}
    for ref in other.refs:
        if ref.ref_id in known_refs:
            continue
        if ref.object_id in objects:
            base.refs.append(copy.copy(ref))
        else:
            skips.add("merge_unknown_object", f"{where} ref {ref.ref_id} object {ref.object_id}")
    for k, v in other.meta.items():
        base.meta.setdefault(k, v)


def merge_corpora(
    base: Corpus, *others: Corpus, name: str | None = None, inplace: bool = False
) -> Corpus:
    """Attach the annotations of ``others`` to the scenes of ``base`` (matched by image id,
    objects by id). Inputs are not modified unless ``inplace``. Counted skips: ``merge_unknown_object`` (an
    object, relation endpoint or ref object the base scene lacks) and
    ``merge_image_not_in_base`` (a scene of another corpus whose image the base lacks)."""
    scenes = base.scenes if inplace else [copy.deepcopy(s) for s in base.scenes]
    by_image = {s.image.id: s for s in scenes}
    skips = Skips()
    skips.update(base.skips)
    categories = {c.name: c for c in base.categories}
    for other in others:
        skips.update(other.skips)
        for s in other.scenes:
            target = by_image.get(s.image.id)
            if target is None:
                skips.add("merge_image_not_in_base", f"{other.name} image {s.image.id}")
                continue
            _merge_scene(target, s, skips, f"{other.name} image {s.image.id}")
        for c in other.categories:
            categories.setdefault(c.name, c)
    names = [base.name, *(o.name for o in others)]
    meta = {**base.meta, "merged": names}
    return Corpus(name or "+".join(names), scenes, list(categories.values()), skips, meta)


def load_splits(path: str | Path) -> dict[str, str]:
    """A ``{image_id: split}`` JSON file (keys compared as strings)."""
    from scalar.data.readers.common import load_json

    data = load_json(path)
    if not isinstance(data, dict):
        from scalar.data.scene import AnnotationError

        raise AnnotationError(path, "top level", "expected an object {image_id: split}")
    return {str(k): str(v) for k, v in data.items()}


def hash_split(image_id, fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> str:
    """A stable split for an image id from a CRC32 hash (same on every machine)."""
    u = (zlib.crc32(str(image_id).encode()) % 10_000) / 10_000
    total, acc = sum(fractions.values()), 0.0
    for split, f in fractions.items():
        acc += f / total
        if u < acc:
            return split
    return list(fractions)[-1]


_CACHE: dict[str, list] = {}  # repr(reader) -> [corpus, skips already reported]


def clear_cache() -> None:
    """Forget corpora kept by ``select_split`` (call once every split has been read)."""
    _CACHE.clear()


def select_split(
    reader: Callable[[], Corpus],
    split: str,
    splits_file: str | Path | None = None,
    fractions: Mapping[str, float] | None = None,
) -> Corpus:
    """Read a corpus with ``reader()`` and keep the scenes of ``split``.

    The split of an image comes from ``splits_file`` (``{image_id: split}``; images it
    does not list are counted as ``image_not_in_splits_file``), else from a stable hash
    of the image id with ``fractions`` (default 90/5/5 train/val/test). The corpus read
    is kept (see ``clear_cache``) so that the other splits do not read it again. Skips
    the reader attributed to an image go to that image's split; the others are
    reported with the first split selected from it.
    """
    key = repr(reader)
    if key not in _CACHE:
        _CACHE[key] = [reader(), False]
    whole, reported = _CACHE[key]
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    table = load_splits(splits_file) if splits_file else None

    def split_of(image_id) -> str | None:
        if table is not None:
            return table.get(str(image_id))
        return hash_split(image_id, fractions)

    # each split gets the skips of its own images; those of no image go with the first
    skips = whole.skips.restrict(lambda image_id: split_of(image_id) == split, not reported)
    kept = []
    for s in whole.scenes:
        got = split_of(s.image.id)
        if got is None:
            if not reported:
                skips.add("image_not_in_splits_file", f"image {s.image.id}")
            continue
        if got == split:
            s.split = split
            kept.append(s)
    _CACHE[key][1] = True
    meta = {**whole.meta, "split": split, "splits_file": str(splits_file or ""), "shared": True}
    return Corpus(whole.name, kept, list(whole.categories), skips, meta)


def read_all(spec) -> Corpus:
    """A reader (callable returning a Corpus) or a list of them merged onto the first."""
    if callable(spec):
        return spec()
    if spec is None:
        raise ValueError("a split without a reader (null): leave it out or give it one")
    readers = list(spec)
    if not readers:
        raise ValueError("an empty list of corpus readers")
    corpora = [r() for r in readers]
    if len(corpora) == 1:
        return corpora[0]
    return merge_corpora(*corpora, inplace=not corpora[0].meta.get("shared"))
