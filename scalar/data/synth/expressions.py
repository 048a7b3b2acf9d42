"""Referring expressions and region descriptions of synthetic scenes.

An expression is structured (``Expr``) and evaluated against every object of the scene;
only expressions that select exactly their target are kept. Kinds:

- ``attribute``: "the [size] [texture] [colour] shape", with the shortest unique set.
- ``relational``: "the <target phrase> <predicate> the <landmark phrase>": the objects
  matching the target phrase that stand in the relation to some other object matching the
  landmark phrase (the landmark phrase is itself unique). Predicates: ``relations.py``.
- ``ordinal``: "the leftmost | rightmost | top | bottom <phrase>" or "the second
  <phrase> from the left" etc.: objects matching the phrase sorted by box centre
  (x for left/right, y for top/bottom; ascending from the named side). Undefined when
  the centre of the chosen object is within ``ORDINAL_MIN_GAP`` px of another's.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalar.data.synth.relations import PREDICATES, relation_holds

ATTR_ORDER = ("size", "texture", "colour", "category")
ORDINAL_MIN_GAP = 3.0
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
EXTREMES = {"left": "leftmost", "right": "rightmost", "top": "top", "bottom": "bottom"}
TARGET_SETS = (("colour", "category"), ("category",))

Attrs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Expr:
    """A structured referring expression (see the module docstring)."""

    kind: str
    attrs: Attrs
    predicate: str | None = None
    landmark: Attrs | None = None
    direction: str | None = None
    rank: int | None = None


def attribute_sets(texture: bool) -> list[tuple[str, ...]]:
    """Attribute subsets to try for attribute-only expressions, shortest first."""
    sets = [("category",), ("colour", "category"), ("size", "category")]
    if texture:
        sets.append(("texture", "category"))
    sets.append(("size", "colour", "category"))
    if texture:
        sets += [("texture", "colour", "category"), ("size", "texture", "category")]
        sets.append(("size", "texture", "colour", "category"))
    return sets


def xyxy(o: dict) -> tuple[float, float, float, float]:
    """The object's box as ``(x1, y1, x2, y2)`` (cached in the dict under ``xyxy``)."""
    b = o.get("xyxy")
    if b is None:
        x, y, w, h = o["box"]
        b = o["xyxy"] = (float(x), float(y), float(x + w), float(y + h))
    return b


def attrs_of(o: dict, keys: tuple[str, ...]) -> Attrs:
    return tuple((k, o[k]) for k in ATTR_ORDER if k in keys and o.get(k) is not None)


def phrase(attrs: Attrs) -> str:
    return " ".join(v for k in ATTR_ORDER for kk, v in attrs if kk == k)


def _matches(o: dict, attrs: Attrs) -> bool:
    for k, v in attrs:
        if o.get(k) != v:
            return False
    return True


def _ordinal_key(o: dict, direction: str) -> float:
    x1, y1, x2, y2 = xyxy(o)
    c = (x1 + x2) / 2 if direction in ("left", "right") else (y1 + y2) / 2
    return c if direction in ("left", "top") else -c


def evaluate(e: Expr, objs: list[dict], image_size: tuple[int, int]) -> list[int]:
    """Indices of the objects ``e`` selects."""
    cands = [i for i, o in enumerate(objs) if _matches(o, e.attrs)]
    if e.kind == "attribute":
        return cands
    if e.kind == "relational":
        marks = [j for j, o in enumerate(objs) if _matches(o, e.landmark)]
        return [
            i
            for i in cands
            if any(
                j != i and relation_holds(e.predicate, xyxy(objs[i]), xyxy(objs[j]), image_size)
                for j in marks
            )
        ]
    if e.kind == "ordinal":
        ranked = sorted(cands, key=lambda i: (_ordinal_key(objs[i], e.direction), i))
        if e.rank >= len(ranked):
            return []
        v = _ordinal_key(objs[ranked[e.rank]], e.direction)
        return [i for i in ranked if abs(_ordinal_key(objs[i], e.direction) - v) < ORDINAL_MIN_GAP]
    raise ValueError(f"unknown expression kind {e.kind!r}")


def describe(e: Expr) -> str:
    """The sentence of an expression (lower case, no punctuation)."""
    p = phrase(e.attrs)
    if e.kind == "attribute":
        return f"the {p}"
    if e.kind == "relational":
        return f"the {p} {e.predicate} the {phrase(e.landmark)}"
    if e.rank == 0:
        return f"the {EXTREMES[e.direction]} {p}"
    return f"the {ORDINALS[e.rank]} {p} from the {e.direction}"


def unique_attrs(objs: list[dict], i: int, texture: bool, size) -> Attrs | None:
    """Shortest attribute set that selects only object ``i``, or None."""
    for keys in attribute_sets(texture):
        attrs = attrs_of(objs[i], keys)
        if evaluate(Expr("attribute", attrs), objs, size) == [i]:
            return attrs
    return None


def _relational(objs, i, marks, size, rng) -> Expr | None:
    needed, other = [], []
    box_i = xyxy(objs[i])
    for keys in TARGET_SETS:
        attrs = attrs_of(objs[i], keys)
        alone = evaluate(Expr("attribute", attrs), objs, size) == [i]
        for j in range(len(objs)):
            mark = None if j == i else marks[j]
            if mark is None:
                continue
            for p in PREDICATES:
                if relation_holds(p, box_i, xyxy(objs[j]), size):
                    e = Expr("relational", attrs, predicate=p, landmark=mark)
                    if evaluate(e, objs, size) == [i]:
                        (other if alone else needed).append(e)
    pool = needed or other
    return pool[int(rng.integers(len(pool)))] if pool else None


def _ordinal(objs, i, size, rng) -> Expr | None:
    for keys in TARGET_SETS:
        attrs = attrs_of(objs[i], keys)
        group = [k for k, o in enumerate(objs) if _matches(o, attrs)]
        if len(group) < 2:
            continue
        found = []
        for d in EXTREMES:
            rank = sorted(group, key=lambda k: (_ordinal_key(objs[k], d), k)).index(i)
            e = Expr("ordinal", attrs, direction=d, rank=rank)
            if evaluate(e, objs, size) == [i]:
                found.append(e)
        if found:
            best = min(e.rank for e in found)
            pool = [e for e in found if e.rank == best]
            return pool[int(rng.integers(len(pool)))]
    return None


def refer(
    objs: list[dict], i: int, texture: bool, size, rng, marks: list | None = None
) -> list[tuple[str, str]]:
    """Unique sentences ``(kind, text)`` for object ``i``: at most one of each kind.

    ``marks`` (optional cache): ``unique_attrs`` of every object of the scene.
    """
    if marks is None:
        marks = [unique_attrs(objs, j, texture, size) for j in range(len(objs))]
    out = []
    attrs = marks[i]
    exprs = [Expr("attribute", attrs) if attrs else None]
    exprs += [_relational(objs, i, marks, size, rng), _ordinal(objs, i, size, rng)]
    for e in exprs:
        if e is not None:
            assert evaluate(e, objs, size) == [i], e
            out.append((e.kind, describe(e)))
    return out


def region_phrases(objs: list[dict], i: int, size, rng) -> list[str]:
    """Descriptions of object ``i``: its full look, and one relation to another object."""
    full = "a " + phrase(attrs_of(objs[i], ATTR_ORDER))
    out = [full]
    pairs = [
        (p, j)
        for j in range(len(objs))
        if j != i
        for p in PREDICATES
        if relation_holds(p, xyxy(objs[i]), xyxy(objs[j]), size)
    ]
    if pairs:
        p, j = pairs[int(rng.integers(len(pairs)))]
        other = phrase(attrs_of(objs[j], ("colour", "category")))
        out.append(f"{full} {p} a {other}")
    return out
