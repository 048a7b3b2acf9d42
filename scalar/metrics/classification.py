"""Referring object classification accuracy (exact match of normalised names), keyed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scalar.metrics.keyed import KeyedRecordMetric, grouped, groups_of, metas_or_none
from scalar.metrics.text import normalize_answer


class ClassificationAccuracy(KeyedRecordMetric):
    """Accuracy of generated category names, overall and per group.

    ``update(preds, answers, metas=None, keys=None)``: ``answers[i]`` is the category
    name or a list of accepted names. A prediction is correct when its normalised form
    (``normalize_answer``: lower case, no punctuation or articles) equals an answer's.
    An empty output is ``unparseable`` (and wrong). Groups: ``prompt_kind`` (box, point,
    mask) and ``held_out``/``seen``. ``compute()``: ``acc``, ``n``, ``unparseable`` and
    ``<group>/acc`` ...
    """

    higher_is_better = True

    def update(
        self,
        preds: Sequence[str],
        answers: Sequence[str | Sequence[str]],
        metas=None,
        keys=None,
    ) -> None:
        if len(preds) != len(answers):
            raise ValueError(f"{len(preds)} predictions for {len(answers)} answers")
        metas = metas_or_none(metas, len(preds))
        recs = []
        for pred, ans, meta in zip(preds, answers, metas):
            accepted = [ans] if isinstance(ans, str) else list(ans)
            norm = normalize_answer(pred)
            ok = bool(norm) and norm in {normalize_answer(a) for a in accepted}
            recs.append({"correct": ok, "parsed": bool(norm), "groups": groups_of(meta)})
        self._add(keys, recs)

    @staticmethod
    def _summary(recs: list[dict[str, Any]]) -> dict[str, float | int]:
        n = len(recs)
        return {
            "acc": sum(r["correct"] for r in recs) / n if n else float("nan"),
            "n": n,
            "unparseable": sum(not r["parsed"] for r in recs),
        }

    def summarize(self, recs: list[dict[str, Any]]) -> dict[str, float | int]:
        """The figures of ``recs`` (``compute`` on the split; the bootstrap on resamples)."""
        return grouped(recs, self._summary)

    def compute(self) -> dict[str, float | int]:
        return self.summarize([r for _, r in self.unique()])
