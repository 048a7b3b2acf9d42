"""Caption CIDEr-D with pycocoevalcap's scorer and a simple, Java-free tokenisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scalar.metrics.base import RecordMetric
from scalar.metrics.text import simple_tokenize


def _tok(text: str) -> str:
    return " ".join(simple_tokenize(text))


def cider_d(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
    """Corpus CIDEr-D (pycocoevalcap ``Cider``: clipped n-grams, length penalty, x10).

    Text is lower-cased and stripped of punctuation instead of the PTB tokenizer.
    Returns ``(corpus score, per-caption scores)``; an empty corpus gives ``(nan, [])``.
    """
    from pycocoevalcap.cider.cider import Cider

    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} captions for {len(refs)} reference lists")
    if not preds:
        return float("nan"), []
    gts, res = {}, {}
    for i, (pred, ref) in enumerate(zip(preds, refs)):
        ref = [ref] if isinstance(ref, str) else list(ref)
        if not ref:
            raise ValueError(f"caption {i} has no reference")
        gts[i] = [_tok(r) for r in ref]
        res[i] = [_tok(pred)]
    score, scores = Cider().compute_score(gts, res)
    return float(score), [float(s) for s in scores]


class CaptionCIDEr(RecordMetric):
    """Corpus-level CIDEr-D of generated captions against their references.

    ``update(preds, refs)``; ``compute()`` -> ``{'cider': score}`` (``nan`` when empty).
    """

    higher_is_better = True

    def update(self, preds: Sequence[str], refs: Sequence[str | Sequence[str]], metas: Any = None):  # noqa: ARG002
        if len(preds) != len(refs):
            raise ValueError(f"{len(preds)} captions for {len(refs)} reference lists")
        for pred, ref in zip(preds, refs):
            self.records.append((str(pred), [ref] if isinstance(ref, str) else list(ref)))

    def compute(self) -> dict[str, float]:
        preds = [p for p, _ in self.records]
        refs = [r for _, r in self.records]
        return {"cider": cider_d(preds, refs)[0]}
