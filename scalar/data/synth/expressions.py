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

from scalar.data.synth.relations import Table, relation_table

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


def scene_relations(objs: list[dict], image_size: tuple[int, int]) -> Table:
    """``relations.relation_table`` of the objects' boxes."""
    return relation_table([xyxy(o) for o in objs], image_size)


def _select(objs: list[dict], attrs: Attrs) -> list[int]:
    return [i for i, o in enumerate(objs) if _matches(o, attrs)]


def evaluate(
    e: Expr, objs: list[dict], image_size: tuple[int, int], table: Table | None = None
) -> list[int]:
    """Indices of the objects ``e`` selects (``table``: ``scene_relations``, made if None)."""
    cands = _select(objs, e.attrs)
    if e.kind == "attribute":
        return cands
    if e.kind == "relational":
        if table is None:
            table = scene_relations(objs, image_size)
        marks = _select(objs, e.landmark)
        return [i for i in cands if any(e.predicate in table[i][j] for j in marks)]
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


def _relational(objs, i, marks, size, rng, table: Table) -> Expr | None:
    # ``evaluate`` of each candidate, with the matching objects computed once
    needed, other = [], []
    landmarks = [None if m is None else _select(objs, m) for m in marks]
    for keys in TARGET_SETS:
        attrs = attrs_of(objs[i], keys)
        cands = _select(objs, attrs)
        alone = cands == [i]
        for j in range(len(objs)):
            mark = None if j == i else marks[j]
            if mark is None:
                continue
            for p in table[i][j]:
                hits = [c for c in cands if any(p in table[c][m] for m in landmarks[j])]
                if hits == [i]:
                    e = Expr("relational", attrs, predicate=p, landmark=mark)
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
    objs: list[dict],
    i: int,
    texture: bool,
    size,
    rng,
    marks: list | None = None,
    table: Table | None = None,
) -> list[tuple[str, str]]:
    """Unique sentences ``(kind, text)`` for object ``i``: at most one of each kind.

    Optional caches: ``marks``, the ``unique_attrs`` of every object of the scene;
    ``table``, its ``scene_relations``.
    """
    if marks is None:
        marks = [unique_attrs(objs, j, texture, size) for j in range(len(objs))]
    if table is None:
        table = scene_relations(objs, size)
    out = []
    attrs = marks[i]
    exprs = [Expr("attribute", attrs) if attrs else None]
    exprs += [_relational(objs, i, marks, size, rng, table), _ordinal(objs, i, size, rng)]
    for e in exprs:
        if e is not None:
            assert evaluate(e, objs, size, table) == [i], e
            out.append((e.kind, describe(e)))
    return out


def region_phrases(objs: list[dict], i: int, size, rng, table: Table | None = None) -> list[str]:
    """Descriptions of object ``i``: its full look, and one relation to another object."""
    if table is None:
        table = scene_relations(objs, size)
    full = "a " + phrase(attrs_of(objs[i], ATTR_ORDER))
    out = [full]
    pairs = [(p, j) for j in range(len(objs)) for p in table[i][j]]
    if pairs:
        p, j = pairs[int(rng.integers(len(pairs)))]
        other = phrase(attrs_of(objs[j], ("colour", "category")))
        out.append(f"{full} {p} a {other}")
    return out
