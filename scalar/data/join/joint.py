"""The corpus join: RefCOCO, COCO, LVIS and Visual Genome annotations of the same images.

Images are matched by COCO image id (COCO 2014 and 2017 share ids; RefCOCO/+/g use
train2014 images, LVIS v1 the 2017 ones; Visual Genome's ``image_data`` gives ``coco_id``,
null for most images, counted as ``join_no_coco_id``). The base corpus is RefCOCO when
given (its refs decide the split), else COCO. The objects of every other corpus are
matched one-to-one onto the base's (``match.match_objects``): a matched object adds its
attributes, synset, supercategory and mask to the base object; unmatched ones are kept
with what their own corpus gives (ids ``"<corpus>:<id>"``); conflicting ones (a box
match with an incompatible name) are left out and counted. Relations are kept when both
ends are in the joined scene; region boxes are brought to the base image's size.

With a WordNet folder (``wordnet_dir``), each object with a synset gets its hypernym path
(``Scene.meta["hypernym_paths"]``) and the direct hypernym as its supercategory; without
one, chains use the corpora's supercategories and the run says so once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalar.data import merge
from scalar.data.join.match import match_objects
from scalar.data.join.wordnet import WordNet, load_wordnet
from scalar.data.readers.common import load_json
from scalar.data.scene import Corpus, Object, Region, Relation, Scene, Skips

_SAID: set[str] = set()


def say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        print(message, flush=True)


def _read(reader, by_coco_id: bool = False) -> tuple[Corpus | None, bool]:
    """Read through ``merge``'s cache (one read for every split); ``(corpus, first)``.
    A list of readers (e.g. COCO 2017 train and val) is read as one corpus. With
    ``by_coco_id`` (Visual Genome) the scenes without a ``coco_id`` are counted
    (``meta["no_coco_id"]``: image ids) and dropped from the kept corpus at once."""
    if reader is None:
        return None, False
    key = "join:" + repr(reader)
    first = key not in merge._CACHE
    if first:
        if callable(reader):
            corpus = reader()
        else:
            parts = [r() for r in reader]
            corpus = Corpus(parts[0].name, [s for p in parts for s in p.scenes], skips=Skips())
            for p in parts:
                corpus.skips.update(p.skips)
                corpus.categories += [c for c in p.categories if c not in corpus.categories]
        if by_coco_id:
            corpus.meta["no_coco_id"] = [
                s.image.id for s in corpus.scenes if s.meta.get("coco_id") is None
            ]
            corpus.meta["images_read"] = len(corpus.scenes)
            corpus.scenes = [s for s in corpus.scenes if s.meta.get("coco_id") is not None]
        merge._CACHE[key] = [corpus, True]
    return merge._CACHE[key][0], first


def load_category_synsets(path: str | Path | None) -> dict[str, str]:
    """``{category name: synset}`` from LVIS's ``coco_to_synset.json`` layout
    (``{name: {"synset": ...}}``) or a plain ``{name: synset}``; empty for null."""
    if not path:
        return {}
    data = load_json(path)
    out = {}
    for name, v in data.items():
        syn = v.get("synset") if isinstance(v, dict) else v
        if isinstance(syn, str) and syn:
            out[str(name)] = syn
    return out


class _Pair:
    """Counts of one corpus pair (``base~other``)."""

    def __init__(self):
        self.c = dict(images=0, matched=0, unmatched_base=0, unmatched_other=0, conflicting=0)
        self.c |= dict(relations_kept=0, relations_dropped=0)


def _image_key(scene: Scene, by_coco_id: bool) -> Any:
    return scene.meta.get("coco_id") if by_coco_id else scene.image.id


def join_scene(
    base: Scene, other: Scene, name: str, pair: _Pair, iou: float, wordnet: WordNet | None,
    keep_unmatched: bool = True,
) -> None:  # fmt: skip
    """Join ``other``'s annotations of the same image into ``base`` (in place)."""
    sx = base.image.width / other.image.width if other.image.width else 1.0
    sy = base.image.height / other.image.height if other.image.height else 1.0
    m = match_objects(base.objects, other.objects, iou, (sx, sy), wordnet)
    c = pair.c
    c["images"] += 1
    c["matched"] += len(m.pairs)
    c["unmatched_base"] += len(m.unmatched_base)
    c["unmatched_other"] += len(m.unmatched_other)
    c["conflicting"] += len(m.conflicting)
    ids: dict[Any, Any] = {}
    for i, j, _ in m.pairs:
        mine, o = base.objects[i], other.objects[j]
        ids[o.id] = mine.id
        mine.attributes = list(dict.fromkeys(mine.attributes + list(o.attributes)))
        mine.synset = mine.synset or o.synset
        mine.supercategory = mine.supercategory or o.supercategory
        if mine.mask is None and o.mask is not None and (sx, sy) == (1.0, 1.0):
            mine.mask = o.mask
    if keep_unmatched:
        for j in m.unmatched_other:
            src = other.objects[j]
            b = src.box
            o = Object(f"{name}:{src.id}", src.category, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy),
                       src.category_id, src.supercategory, src.synset,
                       src.mask if (sx, sy) == (1.0, 1.0) else None, list(src.attributes),
                       src.iscrowd)  # fmt: skip
            ids[src.id] = o.id
            base.objects.append(o)
    known = {(r.subject, r.predicate, r.object) for r in base.relations}
    for r in other.relations:
        s, t = ids.get(r.subject), ids.get(r.object)
        if s is None or t is None:
            c["relations_dropped"] += 1
        elif (s, r.predicate, t) not in known:
            known.add((s, r.predicate, t))
            base.relations.append(Relation(s, r.predicate, t))
            c["relations_kept"] += 1
    have = {r.id for r in base.regions}
    for r in other.regions:
        rid = r.id if r.id not in have else f"{name}:{r.id}"
        b = r.box
        base.regions.append(Region(rid, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy), r.text))
    for k, v in other.meta.items():
        base.meta.setdefault(k, v)


def add_hierarchy(scenes: list[Scene], wordnet: WordNet) -> int:
    """Hypernym paths and direct-hypernym supercategories; returns objects given one."""
    n = 0
    for s in scenes:
        paths = s.meta.setdefault("hypernym_paths", {})
        for o in s.objects:
            path = wordnet.hypernym_path(o.synset) if o.synset else []
            if len(path) > 1:
                paths[o.id] = path
                o.supercategory = path[-2]
                n += 1
    return n


def read_joint(
    refcoco: Callable[[], Corpus] | None = None,
    coco: Callable[[], Corpus] | None = None,
    lvis: Callable[[], Corpus] | None = None,
    vg: Callable[[], Corpus] | None = None,
    iou: float = 0.5,
    vg_iou: float = 0.5,
    keep_unmatched: bool = True,
    wordnet_dir: str | Path | None = None,
    category_synsets: str | Path | None = None,
    name: str = "joint",
) -> Corpus:
    """Join the given corpora (readers: callables returning a Corpus) on their images;
    ``Corpus.meta["join"]`` holds the counts per corpus pair (``validate`` prints them)."""
    if refcoco is None and coco is None:
        raise ValueError("read_joint: give a refcoco or a coco reader (the base corpus)")
    wordnet = load_wordnet(wordnet_dir)
    base_reader = refcoco if refcoco is not None else coco
    base_name = "refcoco" if refcoco is not None else "coco"
    base_corpus = base_reader()
    scenes = (
        [copy.deepcopy(s) for s in base_corpus.scenes]
        if base_corpus.meta.get("shared")
        else base_corpus.scenes
    )
    synsets = load_category_synsets(category_synsets)
    for s in scenes:
        for o in s.objects:
            o.synset = o.synset or synsets.get(o.category)
    by_image = {s.image.id: s for s in scenes}
    skips = Skips()
    skips.update(base_corpus.skips)
    categories = {c.name: c for c in base_corpus.categories}
    report: dict[str, Any] = {}
    others = [("coco", coco if refcoco is not None else None, iou, False),
              ("lvis", lvis, iou, False), ("vg", vg, vg_iou, True)]  # fmt: skip
    read = {n: _read(r, by_coco_id) for n, r, _, by_coco_id in others[::-1]}  # VG first
    for other_name, _, thr, by_coco_id in others:
        corpus, first = read[other_name]
        if corpus is None:
            continue
        pair, used = _Pair(), set()
        if first:
            for image_id in corpus.meta.get("no_coco_id", []):
                skips.add("join_no_coco_id", f"{other_name} image {image_id}")
        for s in corpus.scenes:
            key = _image_key(s, by_coco_id)
            target = by_image.get(key)
            if target is None:
                continue  # another split's image, or one the base lacks (counted below)
            used.add(s.image.id)
            join_scene(target, s, other_name, pair, thr, wordnet, keep_unmatched)
        pair.c["images_other"] = corpus.meta.get("images_read", len(corpus.scenes))
        report[f"{base_name}~{other_name}"] = pair.c
        skips.update(corpus.skips.restrict(lambda i, u=used: i in u, first))
        for c in corpus.categories:
            categories.setdefault(c.name, c)
    if wordnet is not None:
        report["hierarchy"] = {"wordnet": str(wordnet.folder),
                               "objects_with_path": add_hierarchy(scenes, wordnet)}  # fmt: skip
    else:
        say_once("join: no WordNet (wordnet_dir is null): chains use corpus supercategories")
        report["hierarchy"] = {"wordnet": None}
    meta = {**base_corpus.meta, "join": report, "shared": False}
    return Corpus(name, scenes, list(categories.values()), skips, meta)
