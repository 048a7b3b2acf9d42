"""Concept knowledge of the realistic world as plain text, for text-only LM pretraining.

What a language model would have read about the 18 categories of ``taxonomy.py``, written
from the taxonomy and the hand-written shape knowledge below - never from a build's
annotations or images: hypernym paths, parts and shape words, typical attributes,
comparisons between categories, and generic scene sentences. The held-out categories
(``taxonomy.HELD_OUT``) are described with the same templates and words as the seen ones,
so a held-out symbol reads like the seen symbols.

``concept_sentences(seed)`` returns the distinct sentences in a seeded order;
``split_sentences`` keeps a fraction of them (spread over every kind and category) as the
held-out text of the perplexity measurement; ``write_concepts`` writes ``train.txt``,
``heldout.txt`` (one sentence a line) and ``concepts.json`` (counts) into a folder.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from scalar.data.synth.shapes import COLOURS, SIZES
from scalar.data.synth.taxonomy import CATEGORIES, HELD_OUT, ROOT

NUMBERS = {3: "three", 4: "four", 5: "five", 6: "six", 8: "eight", 10: "ten", 12: "twelve"}


@dataclass(frozen=True)
class Shape:
    """Hand-written knowledge of one category: straight sides (0: curved only), corners,
    its parts, what it looks like and where it is seen."""

    sides: int
    corners: int
    parts: tuple[str, ...]
    look: str
    seen_on: str


# fmt: off
KNOWLEDGE: dict[str, Shape] = {
    "circle": Shape(0, 0, ("one round edge", "a centre at equal distance from every edge point"),
                    "perfectly round", "coins and wheels"),
    "ellipse": Shape(0, 0, ("one smooth curved edge", "a long axis and a short axis"),
                     "a stretched circle", "eggs and running tracks"),
    "semicircle": Shape(1, 2, ("one straight edge", "one curved edge", "two corners"),
                        "half of a circle", "arches and protractors"),
    "crescent": Shape(0, 2, ("two curved edges", "two sharp tips"),
                      "a thin slice of the moon", "flags and night skies"),
    "triangle": Shape(3, 3, ("three straight sides", "three corners", "a pointed top"),
                      "a slice of pie", "road signs and roofs"),
    "pentagon": Shape(5, 5, ("five straight sides", "five corners", "equal sides"),
                      "the outline of a house", "footballs and badges"),
    "hexagon": Shape(6, 6, ("six straight sides", "six corners", "equal sides"),
                     "a honeycomb cell", "honeycombs and nuts"),
    "octagon": Shape(8, 8, ("eight straight sides", "eight corners", "equal sides"),
                     "a stop sign", "stop signs and tiles"),
    "square": Shape(4, 4, ("four straight sides", "four corners", "equal sides", "right angles"),
                    "a box seen from above", "tiles and windows"),
    "rectangle": Shape(4, 4, ("four straight sides", "four corners", "right angles",
                              "two long sides and two short sides"),
                       "a door or a book", "doors and screens"),
    "diamond": Shape(4, 4, ("four straight sides", "four corners", "equal sides",
                            "a point at the top and a point at the bottom"),
                     "a square standing on a corner", "playing cards and kites"),
    "trapezoid": Shape(4, 4, ("four straight sides", "four corners", "two parallel sides",
                              "a short top side and a long bottom side"),
                       "a rectangle with slanted sides", "lamp shades and bridges"),
    "parallelogram": Shape(4, 4, ("four straight sides", "four corners", "two pairs of "
                                  "parallel sides", "slanted sides"),
                           "a rectangle pushed over to one side", "tiles and ramps"),
    "star": Shape(10, 10, ("five points", "five inner corners", "ten straight edges"),
                  "a star in the night sky", "flags and badges"),
    "cross": Shape(12, 12, ("four arms", "a square centre", "twelve straight edges"),
                   "a plus sign", "maps and first aid signs"),
    "heart": Shape(0, 1, ("two rounded lobes at the top", "a point at the bottom", "curved sides"),
                   "a symbol of love", "cards and greetings"),
    "arrow": Shape(7, 7, ("a long shaft", "a pointed head", "seven straight edges"),
                   "a sign that shows a direction", "road signs and maps"),
    "chevron": Shape(6, 6, ("two slanted arms", "a point at the front", "a notch at the back"),
                     "the letter v turned on its side", "road signs and uniforms"),
}
SIMILAR = {  # pairs that are easy to confuse, and what tells them apart
    ("circle", "ellipse"): "an ellipse is longer than it is tall",
    ("semicircle", "circle"): "a semicircle has a straight edge",
    ("crescent", "circle"): "a crescent has two sharp tips",
    ("pentagon", "hexagon"): "a hexagon has one more side",
    ("hexagon", "octagon"): "an octagon has two more sides",
    ("square", "rectangle"): "a rectangle has two long sides",
    ("square", "diamond"): "a diamond stands on a corner",
    ("trapezoid", "rectangle"): "a trapezoid has slanted sides",
    ("trapezoid", "parallelogram"): "a trapezoid has only one pair of parallel sides",
    ("parallelogram", "rectangle"): "a parallelogram has no right angles",
    ("star", "cross"): "a star has five points and a cross has four arms",
    ("heart", "circle"): "a heart has a point at the bottom",
    ("heart", "crescent"): "a heart has two lobes",
    ("arrow", "chevron"): "an arrow has a long shaft",
    ("chevron", "triangle"): "a chevron has a notch",
}
# fmt: on
KINDS = ("hypernym", "parts", "attributes", "comparison", "scene")


def article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def plural(word: str) -> str:
    if word == "round":  # the supercategory is an adjective
        return "round shapes"
    return word + ("es" if word.endswith(("s", "x", "sh", "ch")) else "s")


def _hypernym(c) -> list[str]:
    s, f = c.supercategory, c.family
    return [
        f"{article(c.name)} is a kind of {s}.",
        f"{article(c.name)} is {article(s)}; {plural(s)} are {plural(f)}; {plural(f)} are {ROOT}s.",
        f"{article(c.name)} is {article(f)}.",
        f"{article(c.name)} is a {ROOT}.",
        f"the word {c.name} names {article(s)}.",
        f"{c.name}, {s}, {f}, {ROOT}: each word is more general than the one before.",
        f"one kind of {s} is called {article(c.name)}.",
    ]


def _parts(c, k: Shape) -> list[str]:
    out = [f"{article(c.name)} has {p}." for p in k.parts]
    out.append(f"{article(c.name)} looks like {k.look}.")
    if k.sides == 0 and k.corners == 0:
        out.append(f"{article(c.name)} has no straight sides and no corners.")
    elif k.sides == 0:
        out.append(f"{article(c.name)} has no straight sides.")
    elif k.sides in NUMBERS and k.sides == k.corners:
        out.append(f"{article(c.name)} has {NUMBERS[k.sides]} sides and {NUMBERS[k.corners]} "
                   "corners.")  # fmt: skip
    curved = "curved" if k.sides < 2 else "straight"
    out.append(f"the outline of {article(c.name)} is mostly {curved}.")
    return out


def _attributes(c, k: Shape) -> list[str]:
    out = [f"{plural(c.name)} are seen on {k.seen_on}."]
    for colour in COLOURS:
        out.append(f"{article(c.name)} can be {colour}.")
    for size in SIZES:
        out.append(f"{article(c.name)} can be {size}.")
    out += [
        f"{article(c.name)} can be plain or striped.",
        f"{article(c.name)} is a flat shape.",
        f"{article(c.name)} can be turned and still be {article(c.name)}.",
    ]
    if c.aspect < 0.8:
        out.append(f"{article(c.name)} is usually wider than it is tall.")
    elif c.aspect > 1.2:
        out.append(f"{article(c.name)} is usually taller than it is wide.")
    else:
        out.append(f"{article(c.name)} is about as wide as it is tall.")
    return out


def _comparisons(c, k: Shape) -> list[str]:
    out = []
    for o in CATEGORIES:
        if o.name == c.name:
            continue
        ko = KNOWLEDGE[o.name]
        if o.supercategory == c.supercategory:
            out.append(
                f"{article(c.name)} and {article(o.name)} are both {plural(c.supercategory)}."
            )
        elif o.family == c.family:
            out.append(f"{article(c.name)} and {article(o.name)} are both {plural(c.family)}.")
        else:
            out.append(f"{article(c.name)} is {article(c.supercategory)} but {article(o.name)} "
                       f"is {article(o.supercategory)}.")  # fmt: skip
        if k.sides > ko.sides > 0 or (k.sides > 0 and ko.sides == 0):
            out.append(f"{article(c.name)} has more straight sides than {article(o.name)}.")
    for (a, b), diff in SIMILAR.items():
        if c.name in (a, b):
            other = b if c.name == a else a
            out.append(f"{article(c.name)} looks a little like {article(other)}, but {diff}.")
    return out


def _scenes(c, rng: random.Random, n: int = 12) -> list[str]:
    names = [o.name for o in CATEGORIES if o.name != c.name]
    colours = list(COLOURS)
    templates = (
        "in a picture, {a} {x} may lie to the left of {b} {y}.",
        "in a picture, {a} {x} may lie above {b} {y}.",
        "a picture can show {a} {x} next to {b} {y}.",
        "a picture can hold several {xs} and one {y}.",
        "someone drew {a} {x} and {b} {y} side by side.",
        "{a} {x} may be partly hidden behind {b} {y}.",
    )
    out = []
    for i in range(n):
        t = templates[i % len(templates)]
        ca, cb = rng.sample(colours, 2)
        y = rng.choice(names)
        out.append(t.format(a=article(ca), x=c.name, b=article(cb), y=y, xs=plural(c.name)))
    return out


def concept_sentences(seed: int = 0) -> list[tuple[str, str, str]]:
    """``(kind, category, sentence)`` for every category (held-out ones included)."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str]] = []
    for c in CATEGORIES:
        k = KNOWLEDGE[c.name]
        groups = {
            "hypernym": _hypernym(c),
            "parts": _parts(c, k),
            "attributes": _attributes(c, k),
            "comparison": _comparisons(c, k),
            "scene": _scenes(c, rng),
        }
        out += [(kind, c.name, s) for kind, sents in groups.items() for s in sents]
    families = {(c.supercategory, c.family) for c in CATEGORIES}
    for s, f in sorted(families):
        out.append(("hypernym", "", f"every {s} is {article(f)}, and every {f} is a {ROOT}."))
    seen: set[str] = set()
    unique = [t for t in out if not (t[2] in seen or seen.add(t[2]))]
    rng.shuffle(unique)
    return unique


def split_sentences(
    items: list[tuple[str, str, str]], heldout_fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``(train, heldout)`` sentences: every ``1/heldout_fraction``-th sentence of each
    (kind, category) group, in a seeded order, is held out for perplexity."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    groups: dict[tuple[str, str], list[str]] = {}
    for kind, cat, s in items:
        groups.setdefault((kind, cat), []).append(s)
    rng = random.Random(seed + 1)
    held: set[str] = set()
    for key in sorted(groups):
        sents = groups[key]
        n = round(len(sents) * heldout_fraction)
        held.update(rng.sample(sents, n))
    train = [s for _, _, s in items if s not in held]
    return train, [s for _, _, s in items if s in held]


def write_concepts(out_dir: str | Path, seed: int = 0, heldout_fraction: float = 0.1) -> dict:
    """Write the concept corpus into ``out_dir``; returns its record (``concepts.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = concept_sentences(seed)
    train, heldout = split_sentences(items, heldout_fraction, seed)
    (out_dir / "train.txt").write_text("\n".join(train) + "\n")
    (out_dir / "heldout.txt").write_text("\n".join(heldout) + "\n")
    kinds = {k: sum(1 for t in items if t[0] == k) for k in KINDS}
    record = {
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "categories": [c.name for c in CATEGORIES],
        "held_out_categories": list(HELD_OUT),
        "counts": {"train": len(train), "heldout": len(heldout), "kinds": kinds},
    }
    (out_dir / "concepts.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def read_concepts(out_dir: str | Path, split: str) -> list[str]:
    """The sentences of ``split`` (``train`` or ``heldout``) written by ``write_concepts``."""
    path = Path(out_dir) / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"concept text not found: {path} (write it with `python -m scalar.data concepts "
            f"out={out_dir}`)"
        )
    return [line for line in path.read_text().splitlines() if line.strip()]
