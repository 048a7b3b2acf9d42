"""Metric 3-D spatial QA (SpatialVLM's templates) from a scene's 3-D record.

Used by the ``spatial_qa`` task for scenes with ``Scene.meta["geometry"]`` (the
ground-plane world, or geometry lifted from a depth map by ``lift3d``); 2-D scenes keep
``tasks_spatial``. Geometry is in the camera frame (x right, y down, z forward, metres);
"up" is the height above the ground: ``-y`` (the level camera of the synthetic world), or
the fitted ground plane's normal when the geometry has a ``ground``. Every answer is
computed from the record; questions whose answer would be borderline are not asked:

- closer / farther from the camera: distances to the camera differ by ``DEPTH_RATIO``;
- left / right: a's centre is left of b's left edge and a's right edge left of b's centre
  (x); above / below: centre heights differ by ``HEIGHT_GAP`` metres and by a quarter of
  the taller object;
- bigger / smaller: front areas (width x height) differ by ``AREA_RATIO``;
- fits: can X (its width) pass through the gap between A and B (centre distance minus
  their half widths), asked when the gap is positive and differs from X's width by
  ``FIT_MARGIN``;
- quantitative (metres, two decimals): distance between centres, width, height, distance
  from the camera to the centre. Counting as in ``tasks_spatial``.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

from scalar.data.chains import plural
from scalar.data.sample import Sample
from scalar.data.scene import Object, Scene
from scalar.data.tasks_spatial import object_names

SPATIAL3D_PROMPTS: dict[str, tuple[str, ...]] = {
    "closer_camera": ("which is closer to the camera, the {a} or the {b}?",
                      "of the {a} and the {b}, which is nearer to the viewer?"),
    "farther_camera": ("which is farther from the camera, the {a} or the {b}?",
                       "of the {a} and the {b}, which is further away from the viewer?"),
    "left_3d": ("is the {a} to the left of the {b}?", "does the {a} stand left of the {b}?"),
    "right_3d": ("is the {a} to the right of the {b}?", "does the {a} stand right of the {b}?"),
    "above_3d": ("is the {a} higher up than the {b}?", "is the centre of the {a} above the {b}'s?"),
    "below_3d": ("is the {a} lower down than the {b}?", "is the centre of the {a} below the {b}'s?"),
    "bigger_3d": ("which is bigger in real size, the {a} or the {b}?",
                  "of the {a} and the {b}, which is larger in reality?"),
    "smaller_3d": ("which is smaller in real size, the {a} or the {b}?",
                   "of the {a} and the {b}, which is smaller in reality?"),
    "fits": ("can the {x} fit between the {a} and the {b}?",
             "is there room for the {x} between the {a} and the {b}?"),
    "distance_3d": ("how far apart are the {a} and the {b} in metres?",
                    "what is the distance between the {a} and the {b}?"),
    "width_3d": ("how wide is the {a} in metres?", "what is the width of the {a}?"),
    "height_3d": ("how tall is the {a} in metres?", "what is the height of the {a}?"),
    "depth_camera": ("how far is the {a} from the camera?",
                     "what is the distance from the camera to the {a}?"),
    "count": ("how many {things} are there?",),
}  # fmt: skip
QUALITATIVE = ("closer_camera", "farther_camera", "left_3d", "right_3d", "above_3d",
               "below_3d", "bigger_3d", "smaller_3d", "fits")  # fmt: skip
QUANTITATIVE = ("distance_3d", "width_3d", "height_3d", "depth_camera", "count")
DEPTH_RATIO = 1.1
HEIGHT_GAP = 0.1
AREA_RATIO = 1.5
FIT_MARGIN = 0.15  # the gap and X's width differ by at least this fraction of X's width
UNIT = "m"


def metres(v: float) -> str:
    return f"{v:.2f} metres"


class Geometry:
    """Centres, sizes and the "up" direction of a scene's 3-D record."""

    def __init__(self, geo: dict):
        self.objects = {k: {"c": np.asarray(v["center"], float), "s": np.asarray(v["size"], float)}
                        for k, v in geo["objects"].items()}  # fmt: skip
        ground = geo.get("ground")
        self.up = -np.asarray(ground["normal"]) if ground else np.array([0.0, -1.0, 0.0])

    def centre(self, oid) -> np.ndarray:
        return self.objects[oid]["c"]

    def size(self, oid) -> np.ndarray:
        return self.objects[oid]["s"]

    def elevation(self, oid) -> float:
        return float(self.centre(oid) @ self.up)

    def range(self, oid) -> float:
        return float(np.linalg.norm(self.centre(oid)))

    def distance(self, a, b) -> float:
        return float(np.linalg.norm(self.centre(a) - self.centre(b)))

    def left_of(self, a, b) -> bool:
        (xa, wa), (xb, wb) = (
            (self.centre(a)[0], self.size(a)[0]),
            (self.centre(b)[0], self.size(b)[0]),
        )
        return xa < xb - wb / 2 and xa + wa / 2 < xb

    def above(self, a, b) -> bool:
        gap = self.elevation(a) - self.elevation(b)
        return gap >= max(HEIGHT_GAP, 0.25 * max(self.size(a)[1], self.size(b)[1]))

    def area(self, oid) -> float:
        return float(self.size(oid)[0] * self.size(oid)[1])


def _qa(scene, qtype, rng, answer, value, objs, chains, **fmt) -> Sample:
    k = rng.randrange(len(SPATIAL3D_PROMPTS[qtype]))
    kind = "quantitative" if qtype in QUANTITATIVE else "qualitative"
    meta = {"question_type": qtype, "answer_type": kind, "value": value, "template": k,
            "object_ids": [o.id for o in objs], "split": scene.split, "image_id": scene.image.id,
            "concepts": [c for o in objs for c in chains.get(o.id, [])]}  # fmt: skip
    if kind == "quantitative" and qtype != "count":
        meta["unit"] = UNIT
    prompt = SPATIAL3D_PROMPTS[qtype][k].format(**fmt)
    return Sample("spatial_qa", scene.image, prompt, answer, [], [], meta)


def _pair(scene, g: Geometry, a: Object, b: Object, names, others, rng, chains) -> list[Sample]:
    na, nb = names[a.id], names[b.id]
    out = []
    ra, rb = g.range(a.id), g.range(b.id)
    if max(ra, rb) >= DEPTH_RATIO * min(ra, rb):
        q = rng.choice(("closer_camera", "farther_camera"))
        winner = na if (ra < rb) == (q == "closer_camera") else nb
        out.append(_qa(scene, q, rng, f"the {winner}", winner, [a, b], chains, a=na, b=nb))
    for test, pos, neg in ((g.left_of, "left_3d", "right_3d"), (g.above, "above_3d", "below_3d")):
        if test(a.id, b.id) or test(b.id, a.id):
            q = rng.choice((pos, neg))
            truth = test(a.id, b.id) if q == pos else test(b.id, a.id)
            out.append(_qa(scene, q, rng, "yes" if truth else "no", truth, [a, b], chains,
                           a=na, b=nb))  # fmt: skip
    sa, sb = g.area(a.id), g.area(b.id)
    if max(sa, sb) >= AREA_RATIO * min(sa, sb):
        q = rng.choice(("bigger_3d", "smaller_3d"))
        winner = na if (sa > sb) == (q == "bigger_3d") else nb
        out.append(_qa(scene, q, rng, f"the {winner}", winner, [a, b], chains, a=na, b=nb))
    if others:
        x = rng.choice(others)
        gap = g.distance(a.id, b.id) - (g.size(a.id)[0] + g.size(b.id)[0]) / 2
        width = g.size(x.id)[0]
        if gap > 0 and abs(gap - width) >= FIT_MARGIN * width:
            truth = bool(width < gap)
            out.append(_qa(scene, "fits", rng, "yes" if truth else "no", truth, [x, a, b],
                           chains, x=names[x.id], a=na, b=nb))  # fmt: skip
    d = round(g.distance(a.id, b.id), 2)
    out.append(_qa(scene, "distance_3d", rng, metres(d), d, [a, b], chains, a=na, b=nb))
    return out


def spatial3d_samples(
    scene: Scene, rng: random.Random, chains: dict, max_pairs: int = 6, geometry=None
) -> list[Sample]:
    """3-D QA of a scene (``geometry``: default ``scene.meta["geometry"]``): up to
    ``max_pairs`` ordered pairs of objects with 3-D records, sizes and distances from the
    camera of up to ``max_pairs`` objects, and one count per category."""
    g = Geometry(geometry if geometry is not None else scene.meta["geometry"])
    names = object_names(scene)
    named = [o for o in scene.objects if o.id in names and o.id in g.objects]
    pairs = [(a, b) for a in named for b in named if a.id != b.id]
    rng.shuffle(pairs)
    out: list[Sample] = []
    for a, b in pairs[:max_pairs]:
        others = [o for o in named if o.id not in (a.id, b.id)]
        out.extend(_pair(scene, g, a, b, names, others, rng, chains))
    sized = list(named)
    rng.shuffle(sized)
    for o in sized[:max_pairs]:
        q = rng.choice(("width_3d", "height_3d"))
        v = round(float(g.size(o.id)[0 if q == "width_3d" else 1]), 2)
        out.append(_qa(scene, q, rng, metres(v), v, [o], chains, a=names[o.id]))
        r = round(g.range(o.id), 2)
        out.append(_qa(scene, "depth_camera", rng, metres(r), r, [o], chains, a=names[o.id]))
    counts = Counter(o.category for o in scene.objects if not o.iscrowd)
    crowded = {o.category for o in scene.objects if o.iscrowd}
    for cat in sorted(set(counts) - crowded):
        objs = [o for o in scene.objects if o.category == cat]
        n = counts[cat]
        out.append(_qa(scene, "count", rng, str(n), n, objs, chains, things=plural(cat)))
    return out
