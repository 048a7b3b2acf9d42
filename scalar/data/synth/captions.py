"""Weak image-level text of the unlabeled pool, as web alt-text is: a caption naming some
of the objects of an image (never all of several), sometimes one that is not there, and
never a box, an object id or a per-object list.

``unlabeled/captions.json`` maps each pool image's file name to its caption.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CAPTIONS_FILE = "captions.json"  # weak text of the unlabeled pool
ABSENT_PROB = 0.25  # chance that a caption also names a category not in the image
COLOUR_PROB = 0.5  # chance that a mentioned object's colour is said
TEMPLATES = ("{}", "a picture of {}", "photo of {}", "{} on a background", "there is {} here")


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _listing(phrases: Sequence[str]) -> str:
    said = [_article(p) for p in phrases]
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


def weak_caption(objs: Sequence[dict], pool: Sequence[str], rng: np.random.Generator) -> str:
    """A caption of a scene ``objs`` (dicts with ``category`` and ``colour``) whose words
    come from the categories ``pool``: 1 object named when there is one, else 1 to n - 1
    of the n objects (in a random order), plus an absent category of ``pool`` with
    probability ``ABSENT_PROB``."""
    if not objs:
        raise ValueError("a weak caption needs at least one object")
    n = len(objs)
    k = 1 if n == 1 else int(rng.integers(1, n))
    chosen = rng.permutation(n)[:k].tolist()
    phrases = []
    for i in chosen:
        o = objs[i]
        colour = rng.random() < COLOUR_PROB
        phrases.append(f"{o['colour']} {o['category']}" if colour else o["category"])
    present = {o["category"] for o in objs}
    absent = [c for c in pool if c not in present]
    if absent and rng.random() < ABSENT_PROB:
        phrases.insert(int(rng.integers(len(phrases) + 1)), absent[int(rng.integers(len(absent)))])
    return TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(_listing(phrases))
