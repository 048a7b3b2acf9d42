"""Spatial relation QA (SpatialVLM-style templates) from object boxes.

Objects are named by their shortest unique phrase (``chains.unique_phrase``), else by a
referring expression of theirs; objects with neither are never asked about. Questions
whose answer would be borderline are not asked:

- ``a left of b``: centre of a left of b's left edge and a's right edge left of b's
  centre (``above`` likewise on y); pairs where neither holds get no such question.
- bigger / smaller: box areas differ by at least ``AREA_RATIO``.
- closer: centre distances to the third object differ by at least ``DISTANCE_RATIO``.
- distance: centre-to-centre, width / height: of the box, in pixels of the original
  image, rounded to an integer. Counting: non-crowd objects of a category (categories
  with a crowd annotation are not counted).
"""

from __future__ import annotations

import math
import random
from collections import Counter

from scalar.data.chains import definite, plural, unique_phrase
from scalar.data.sample import Sample
from scalar.data.scene import Box, Object, Scene

SPATIAL_PROMPTS = {
    "left": "is the {a} left of the {b}?",
    "right": "is the {a} right of the {b}?",
    "above": "is the {a} above the {b}?",
    "below": "is the {a} below the {b}?",
    "bigger": "which is bigger, the {a} or the {b}?",
    "smaller": "which is smaller, the {a} or the {b}?",
    "closer": "which is closer to the {c}, the {a} or the {b}?",
    "distance": "how far apart are the {a} and the {b}?",
    "width": "how wide is the {a}?",
    "height": "how tall is the {a}?",
    "count": "how many {things} are there?",
}
AREA_RATIO = 1.5
DISTANCE_RATIO = 1.25


def _c(b: Box) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def _area(b: Box) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


def left_of(a: Box, b: Box) -> bool:
    return _c(a)[0] < b[0] and a[2] < _c(b)[0]


def above(a: Box, b: Box) -> bool:
    return _c(a)[1] < b[1] and a[3] < _c(b)[1]


def center_distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = _c(a), _c(b)
    return math.hypot(ax - bx, ay - by)


def object_names(scene: Scene) -> dict:
    """``{object id: name without article}`` for the objects that can be named uniquely."""
    names = {}
    for o in scene.objects:
        if o.iscrowd:
            continue
        name = unique_phrase(scene, o)
        if name is None:
            sents = [s for r in scene.refs if r.object_id == o.id for s in r.sentences]
            name = definite(sents[0])[4:] if sents else None
        if name:
            names[o.id] = name
    return names


def _qa(scene, qtype, answer, answer_type, value, objs, chains, **fmt) -> Sample:
    meta = {
        "question_type": qtype,
        "answer_type": answer_type,
        "value": value,
        "object_ids": [o.id for o in objs],
        "split": scene.split,
        "image_id": scene.image.id,
        "concepts": [c for o in objs for c in chains.get(o.id, [])],
    }
    prompt = SPATIAL_PROMPTS[qtype].format(**fmt)
    return Sample("spatial_qa", scene.image, prompt, answer, [], [], meta)


def _pair_questions(scene, a: Object, b: Object, names, others, rng, chains) -> list[Sample]:
    na, nb = names[a.id], names[b.id]
    out = []
    for test, pos, neg in ((left_of, "left", "right"), (above, "above", "below")):
        if test(a.box, b.box) or test(b.box, a.box):
            q = rng.choice((pos, neg))
            truth = test(a.box, b.box) if q == pos else test(b.box, a.box)
            out.append(_qa(scene, q, "yes" if truth else "no", "qualitative", truth, [a, b],
                           chains, a=na, b=nb))  # fmt: skip
    sa, sb = _area(a.box), _area(b.box)
    if max(sa, sb) >= AREA_RATIO * min(sa, sb):
        q = rng.choice(("bigger", "smaller"))
        winner = na if (sa > sb) == (q == "bigger") else nb
        out.append(_qa(scene, q, f"the {winner}", "qualitative", winner, [a, b], chains,
                       a=na, b=nb))  # fmt: skip
    if others:
        c = rng.choice(others)
        da, db = center_distance(a.box, c.box), center_distance(b.box, c.box)
        if max(da, db) >= DISTANCE_RATIO * min(da, db):
            winner = na if da < db else nb
            out.append(_qa(scene, "closer", f"the {winner}", "qualitative", winner, [a, b, c],
                           chains, a=na, b=nb, c=names[c.id]))  # fmt: skip
    d = round(center_distance(a.box, b.box))
    out.append(_qa(scene, "distance", f"{d} pixels", "quantitative", d, [a, b], chains,
                   a=na, b=nb))  # fmt: skip
    return out


def spatial_samples(
    scene: Scene, rng: random.Random, chains: dict, max_pairs: int = 6
) -> list[Sample]:
    """Spatial QA samples of a scene: up to ``max_pairs`` ordered object pairs (chosen by
    ``rng``), sizes of up to ``max_pairs`` objects, and one count per category."""
    names = object_names(scene)
    named = [o for o in scene.objects if o.id in names]
    pairs = [(a, b) for a in named for b in named if a.id != b.id]
    rng.shuffle(pairs)
    out: list[Sample] = []
    for a, b in pairs[:max_pairs]:
        others = [o for o in named if o.id not in (a.id, b.id)]
        out.extend(_pair_questions(scene, a, b, names, others, rng, chains))
    sized = list(named)
    rng.shuffle(sized)
    for o in sized[:max_pairs]:
        w, h = round(o.box[2] - o.box[0]), round(o.box[3] - o.box[1])
        q, v = ("width", w) if rng.random() < 0.5 else ("height", h)
        out.append(_qa(scene, q, f"{v} pixels", "quantitative", v, [o], chains, a=names[o.id]))
    counts = Counter(o.category for o in scene.objects if not o.iscrowd)
    crowded = {o.category for o in scene.objects if o.iscrowd}
    for cat in sorted(counts):
        if cat in crowded:
            continue
        n = counts[cat]
        objs = [o for o in scene.objects if o.category == cat]
        out.append(_qa(scene, "count", str(n), "quantitative", n, objs, chains, things=plural(cat)))
    return out
