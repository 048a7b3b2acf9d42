"""Hierarchical concept chains: general to specific, each level a (text, box) pair.

Levels (``LEVELS``): scene context -> supercategory -> category -> attributes ->
relations -> referring expression. A level the annotations do not support is left out
(no supercategory and no synset head distinct from the category, no attributes, no
relation with the object as subject, no referring expression).

Every level but ``scene`` and ``refexp`` keeps a structured ``key`` so that
:func:`refers_to` can tell which objects of the scene a level's text also describes:
``"the red square"`` describes every red square, including a small red square.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from scalar.data.scene import Box, Object, Scene

LEVELS = ("scene", "supercategory", "category", "attributes", "relations", "refexp")
LEVEL_INDEX = {name: i for i, name in enumerate(LEVELS)}
MAX_ATTRIBUTES = 3  # attributes kept in a phrase (VG objects may list many)
MAX_SCENE_CATEGORIES = 5

_SIZE_WORDS = {"tiny", "small", "little", "medium", "big", "large", "huge", "tall", "short"}
_COLOUR_WORDS = {
    "red", "green", "blue", "yellow", "purple", "orange", "cyan", "brown", "black",
    "white", "gray", "grey", "pink", "silver", "gold", "beige", "tan", "dark", "light",
}  # fmt: skip


@dataclass
class ChainLevel:
    """One level of a concept chain; ``box`` is pixel xyxy (the whole image for ``scene``)."""

    level: str
    text: str
    box: Box
    key: tuple | None = field(default=None, compare=False, repr=False)
    grounds: bool = field(default=False, compare=False, repr=False)  # names this object alone


def article(noun_phrase: str) -> str:
    """``"a square"`` / ``"an ellipse"``."""
    return ("an " if noun_phrase[:1].lower() in "aeiou" else "a ") + noun_phrase


def plural(noun_phrase: str) -> str:
    """English plural of the last word: square -> squares, box -> boxes, fly -> flies."""
    head, _, last = noun_phrase.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif len(last) > 1 and last.endswith("y") and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def definite(text: str) -> str:
    """``"a red square"`` / ``"red square"`` -> ``"the red square"``."""
    words = text.strip().split(" ", 1)
    if words[0].lower() in ("a", "an", "the") and len(words) > 1:
        return "the " + words[1]
    return "the " + text.strip()


def ordered_attributes(obj: Object) -> list[str]:
    """The object's attributes in English adjective order (size first, colour last)."""
    attrs = list(dict.fromkeys(a.strip().lower() for a in obj.attributes if a.strip()))

    def rank(a: str) -> int:
        return 0 if a in _SIZE_WORDS else 2 if a in _COLOUR_WORDS else 1

    return sorted(attrs, key=rank)[:MAX_ATTRIBUTES]


def phrase(category: str, attributes: list[str] | tuple[str, ...] = ()) -> str:
    return " ".join([*attributes, category])


def supercategory_of(obj: Object) -> str | None:
    """Supercategory, else the synset head when it differs from the category, else None."""
    for cand in (obj.supercategory, (obj.synset or "").split(".")[0].replace("_", " ")):
        if cand and cand.strip().lower() != obj.category.strip().lower():
            return cand.strip()
    return None


def _phrase_matches(obj: Object, category: str, attrs: frozenset[str]) -> bool:
    return obj.category == category and attrs <= {a.strip().lower() for a in obj.attributes}


def refers_to(scene: Scene, level: ChainLevel, obj: Object) -> bool:
    """Whether ``level``'s text also describes ``obj`` (``scene``/``refexp``: never decided here)."""
    key = level.key
    if key is None:
        return False
    kind = key[0]
    if kind == "supercategory":
        return supercategory_of(obj) == key[1]
    if kind == "category":
        return obj.category == key[1]
    if kind == "attributes":
        return _phrase_matches(obj, key[1], key[2])
    if kind == "relations":
        _, cat, attrs, predicate, lm_cat, lm_attrs = key
        if not _phrase_matches(obj, cat, attrs):
            return False
        by_id = scene.object_by_id()
        return any(
            r.subject == obj.id
            and r.predicate == predicate
            and r.object in by_id
            and _phrase_matches(by_id[r.object], lm_cat, lm_attrs)
            for r in scene.relations
        )
    return False


def is_unique(scene: Scene, level: ChainLevel) -> bool:
    """True when exactly one object of the scene is described by ``level``."""
    return sum(refers_to(scene, level, o) for o in scene.objects) == 1


def unique_attributes(scene: Scene, obj: Object) -> tuple[str, ...] | None:
    """Fewest attributes naming ``obj`` alone in the scene: none (the category alone), one,
    or all of them; ``None`` when even all of them are ambiguous."""
    attrs = ordered_attributes(obj)
    candidates = [()] + [(a,) for a in attrs] + ([tuple(attrs)] if len(attrs) > 1 else [])
    for cand in candidates:
        if sum(_phrase_matches(o, obj.category, frozenset(cand)) for o in scene.objects) == 1:
            return cand
    return None


def unique_phrase(scene: Scene, obj: Object) -> str | None:
    """Shortest phrase (no article) naming ``obj`` alone, e.g. ``"red square"``, or None."""
    attrs = unique_attributes(scene, obj)
    return None if attrs is None else phrase(obj.category, attrs)


def scene_text(scene: Scene) -> str:
    """``"2 squares, a circle and a star"``: the most frequent categories of the scene."""
    counts = Counter(o.category for o in scene.objects)
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_SCENE_CATEGORIES]
    parts = [article(c) if n == 1 else f"{n} {plural(c)}" for c, n in items]
    if not parts:
        return "an empty scene"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _relation_level(scene: Scene, obj: Object, rng: random.Random | None) -> ChainLevel | None:
    by_id = scene.object_by_id()
    rels = [r for r in scene.relations if r.subject == obj.id and r.object in by_id]
    rels = [r for r in rels if r.object != obj.id]
    if not rels:
        return None
    named = {r.object: unique_attributes(scene, by_id[r.object]) for r in rels}
    rels = [r for r in rels if named[r.object] is not None] or rels  # nameable landmarks first
    rel = rng.choice(rels) if rng is not None else rels[0]
    attrs = ordered_attributes(obj)
    mark = by_id[rel.object]
    short = named[rel.object]  # the landmark's shortest unique name
    mark_attrs = list(short) if short is not None else ordered_attributes(mark)
    text = f"{phrase(obj.category, attrs)} {rel.predicate} {definite(phrase(mark.category, mark_attrs))}"
    key = ("relations", obj.category, frozenset(attrs), rel.predicate, mark.category,
           frozenset(mark_attrs))  # fmt: skip
    return ChainLevel("relations", text, obj.box, key)


def build_chain(
    scene: Scene, obj: Object, rng: random.Random | None = None, level_dropout: float = 0.0
) -> list[ChainLevel]:
    """The concept chain of ``obj`` (see the module docstring).

    With ``level_dropout > 0`` each level except ``category`` is dropped with that
    probability (``rng`` required); ``rng`` also picks the relation and the sentence.
    """
    w, h = scene.image.width, scene.image.height
    chain = [ChainLevel("scene", scene_text(scene), (0.0, 0.0, float(w), float(h)), ("scene",))]
    sup = supercategory_of(obj)
    if sup:
        chain.append(ChainLevel("supercategory", article(sup), obj.box, ("supercategory", sup)))
    chain.append(ChainLevel("category", article(obj.category), obj.box, ("category", obj.category)))
    attrs = ordered_attributes(obj)
    if attrs:
        key = ("attributes", obj.category, frozenset(attrs))
        chain.append(ChainLevel("attributes", phrase(obj.category, attrs), obj.box, key))
    rel = _relation_level(scene, obj, rng)
    if rel is not None:
        chain.append(rel)
    sentences = [(r.ref_id, s) for r in scene.refs if r.object_id == obj.id for s in r.sentences]
    if sentences:
        ref_id, sent = rng.choice(sentences) if rng is not None else sentences[0]
        chain.append(ChainLevel("refexp", sent, obj.box, ("refexp", ref_id)))
    if level_dropout > 0:
        if rng is None:
            raise ValueError("build_chain: level_dropout needs an rng")
        chain = [c for c in chain if c.level == "category" or rng.random() >= level_dropout]
    return chain


def mark_grounding(scene: Scene, chain: list[ChainLevel]) -> list[ChainLevel]:
    """Set ``grounds`` on the levels whose text names the chain's object alone in the scene
    (the referring expression always; ``scene`` never): their boxes are grounding targets."""
    for c in chain:
        c.grounds = c.level == "refexp" or (c.level != "scene" and is_unique(scene, c))
    return chain


def chain_text(chain: list[ChainLevel]) -> str:
    """``"scene: 2 squares and a star; a polygon; a square; small red square; ..."``."""
    return "; ".join(f"scene: {c.text}" if c.level == "scene" else c.text for c in chain)
