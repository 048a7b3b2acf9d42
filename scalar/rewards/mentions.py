"""Rewards on what a description mentions: reference entities (scene-description
exhaustiveness, as in the SCST seed's SDE signal) and the category names it names.

Matching is on :func:`~scalar.metrics.text.simple_tokenize` words; a name of several words
must appear as consecutive words; a plural ``-s`` / ``-es`` of a name's last word counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scalar.metrics.text import simple_tokenize

__all__ = ["entity_mention_reward", "mentioned_names"]


def _forms(name: str) -> list[tuple[str, ...]]:
    words = tuple(simple_tokenize(name))
    if not words:
        return []
    last = words[-1]
    plurals = {last + "s", last + "es", last[:-1] + "ies" if last.endswith("y") else last + "s"}
    return [words] + [words[:-1] + (p,) for p in sorted(plurals)]


def _has(words: Sequence[str], form: tuple[str, ...]) -> bool:
    n = len(form)
    return any(tuple(words[i : i + n]) == form for i in range(len(words) - n + 1))


def mentioned_names(text: str, names: Sequence[str]) -> list[str]:
    """The ``names`` that ``text`` mentions, in the order of ``names`` (each once)."""
    words = simple_tokenize(text)
    return [n for n in dict.fromkeys(names) if any(_has(words, f) for f in _forms(n))]


def entity_mention_reward(texts: Sequence[str], entities: Sequence[Sequence[str]]) -> np.ndarray:
    """Share of each row's distinct reference entities its text mentions; range [0, 1].

    Scene-description exhaustiveness: ``|mentioned ∩ reference| / |reference|``; a row
    without reference entities scores 1 (nothing to miss).
    """
    if len(texts) != len(entities):
        raise ValueError(f"{len(texts)} texts for {len(entities)} entity lists")
    out = np.ones(len(texts))
    for i, (t, ents) in enumerate(zip(texts, entities)):
        ents = list(dict.fromkeys(ents))
        if ents:
            out[i] = len(mentioned_names(t, ents)) / len(ents)
    return out
