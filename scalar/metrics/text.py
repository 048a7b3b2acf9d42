"""Text normalisation and exact-match accuracy (referring object classification, QA)."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from scalar.metrics.base import RecordMetric, group_keys, grouped_mean

_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")
_ARTICLES = {"a", "an", "the"}


def simple_tokenize(text: str) -> list[str]:
    """Lower-case, punctuation replaced by spaces, split on whitespace (no Java PTB tokenizer)."""
    return _PUNCT.sub(" ", str(text).lower()).split()


def normalize_answer(text: str) -> str:
    """Answer form used for exact match: simple tokens without articles, space-joined."""
    return " ".join(t for t in simple_tokenize(text) if t not in _ARTICLES)


class TextAccuracy(RecordMetric):
    """Exact match of normalised prediction and answer; an answer may list alternatives.

    ``update(preds, answers, metas=None)`` where ``answers[i]`` is a string or a list of
    accepted strings. ``compute()`` gives ``{'acc': ..., '<group>/acc': ...}``.
    """

    higher_is_better = True

    def update(
        self,
        preds: Sequence[str],
        answers: Sequence[str | Sequence[str]],
        metas: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        if len(preds) != len(answers):
            raise ValueError(f"{len(preds)} predictions for {len(answers)} answers")
        metas = list(metas) if metas is not None else [None] * len(preds)
        for pred, ans, meta in zip(preds, answers, metas):
            accepted = [ans] if isinstance(ans, str) else list(ans)
            ok = normalize_answer(pred) in {normalize_answer(a) for a in accepted}
            self.records.append((float(ok), group_keys(meta)))

    def compute(self) -> dict[str, float]:
        return grouped_mean(self.records, "acc")
