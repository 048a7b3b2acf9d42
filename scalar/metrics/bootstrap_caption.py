"""Bootstrap intervals of corpus caption scores, recomputed on every resample.

BLEU-4 and CIDEr-D are corpus scores, not means of per-caption scores: BLEU-4 sums
n-gram matches and lengths over the corpus before the geometric mean and the brevity
penalty; CIDEr-D weighs n-grams by their document frequency over the corpus' references.
Both are recomputed exactly as pycocoevalcap computes them on each resampled corpus (a
sample drawn twice counts twice, in the sums and in the document frequencies, as if its
caption were listed twice), from statistics gathered once:

- BLEU-4: per caption the length, the closest reference length, the n-gram guesses and
  clipped matches (pycocoevalcap's ``cook_test``); the resample's totals give the score.
- CIDEr-D: every term of a caption's score is linear in the squared n-gram weights
  ``(log N - log max(1, df))^2``; the resample's document frequencies give the weights,
  sparse products give every caption's score under them, the corpus score is their
  mean over the resample.

ROUGE-L and SPICE are means of per-caption scores; METEOR's interval is the one of the
mean per-caption METEOR (the Java scorer aggregates its statistics itself and is not
run again per resample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from scalar.metrics.bootstrap import LEVEL, mean_intervals, percentile_interval

MEANS = ("rouge_l", "meteor", "spice")  # corpus score = mean of the per-caption scores
_SMALL, _TINY, _SIGMA, _CHUNK = 1e-9, 1e-15, 6.0, 64


def bleu_stats(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """``[n, 10]``: test length, closest reference length, guesses and matches of 1-4 grams
    of each (tokenised) caption, as pycocoevalcap's BLEU counts them."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    rows = []
    for pred, ref in zip(preds, refs):
        c = cook_test(pred, cook_refs(list(ref)), eff="closest")
        rows.append([c["testlen"], c["reflen"], *c["guess"], *c["correct"]])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 10)


def bleu4_of_totals(totals: np.ndarray) -> np.ndarray:
    """Corpus BLEU-4 of summed statistics ``[..., 10]`` (pycocoevalcap's formula)."""
    test, ref = totals[..., 0], totals[..., 1]
    guess, correct = totals[..., 2:6], totals[..., 6:10]
    score = np.prod((correct + _TINY) / (guess + _SMALL), axis=-1) ** 0.25
    ratio = (test + _TINY) / (ref + _SMALL)
    return np.where(ratio < 1, score * np.exp(1 - 1 / np.minimum(ratio, 1)), score)


def _sparse(rows: list[int], cols: list[int], vals: list[float], shape) -> torch.Tensor:
    index = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)
    values = torch.tensor(vals, dtype=torch.float64)
    return torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()


class CiderD:
    """pycocoevalcap's CIDEr-D (n = 1..4, sigma 6, x10) of a corpus under resampling."""

    def __init__(self, preds: Sequence[str], refs: Sequence[Sequence[str]]):
        from pycocoevalcap.cider.cider_scorer import precook

        self.n = len(preds)
        vocab: dict[tuple, int] = {}
        presence, hyp, ref_norm, num = ([], [], []), ([], [], []), ([], [], []), ([], [], [])
        owner, ref_len, hyp_len, self.nrefs = [], [], [], []

        def add(store, row, col, val):
            store[0].append(row), store[1].append(col), store[2].append(val)

        for i, (pred, ref) in enumerate(zip(preds, refs)):
            h = precook(pred)
            hyp_len.append(sum(c for g, c in h.items() if len(g) == 2))  # as pycocoevalcap
            for g, c in h.items():
                add(hyp, 4 * i + len(g) - 1, vocab.setdefault(g, len(vocab)), float(c * c))
            seen = set()
            for r in ref:
                k = len(owner)
                owner.append(i)
                cooked = precook(r)
                ref_len.append(sum(c for g, c in cooked.items() if len(g) == 2))
                for g, c in cooked.items():
                    col = vocab.setdefault(g, len(vocab))
                    seen.add(col)
                    add(ref_norm, 4 * k + len(g) - 1, col, float(c * c))
                    if g in h:
                        add(num, 4 * k + len(g) - 1, col, float(min(h[g], c) * c))
            for col in seen:
                add(presence, col, i, 1.0)
            self.nrefs.append(len(ref))
        g, k = len(vocab), len(owner)
        self.presence = _sparse(*presence, (g, self.n))  # [G, n]: n-gram in a reference of i
        self.hyp, self.ref = _sparse(*hyp, (4 * self.n, g)), _sparse(*ref_norm, (4 * k, g))
        self.num = _sparse(*num, (4 * k, g))
        self.owner = torch.tensor(owner, dtype=torch.long)
        delta = torch.tensor(hyp_len, dtype=torch.float64)[self.owner] - torch.tensor(ref_len)
        self.penalty = torch.exp(-(delta**2) / (2 * _SIGMA**2))  # [K]

    def scores(self, counts: np.ndarray) -> np.ndarray:
        """Per-caption scores ``[B, n]`` when caption i appears ``counts[b, i]`` times."""
        m = torch.as_tensor(np.asarray(counts), dtype=torch.float64).reshape(-1, self.n)
        df = self.presence @ m.T  # [G, B]
        weight2 = (math.log(self.n) - torch.log(df.clamp(min=1.0))) ** 2
        nh = (self.hyp @ weight2).sqrt().reshape(self.n, 4, -1)[self.owner]  # [K, 4, B]
        nr = (self.ref @ weight2).sqrt().reshape(-1, 4, weight2.shape[1])
        num = (self.num @ weight2).reshape(nr.shape)
        den = nh * nr
        val = torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(num))
        per_ref = val.mean(dim=1) * self.penalty[:, None]  # [K, B]
        total = torch.zeros(self.n, per_ref.shape[1], dtype=torch.float64)
        total.index_add_(0, self.owner, per_ref)
        nrefs = torch.tensor(self.nrefs, dtype=torch.float64)[:, None]
        return (10.0 * total / nrefs).T.numpy()

    def corpus(self, counts: np.ndarray) -> np.ndarray:
        """Corpus CIDEr-D ``[B]`` of resamples given as counts ``[B, n]``."""
        counts = np.asarray(counts, dtype=np.float64).reshape(-1, self.n)
        out = [(c * self.scores(c)).sum(axis=1) / self.n
               for c in np.array_split(counts, max(1, math.ceil(len(counts) / _CHUNK)))]  # fmt: skip
        return np.concatenate(out)


def counts_of(idx: np.ndarray, n: int) -> np.ndarray:
    """Resampled indices ``[B, n]`` -> how often each sample is drawn ``[B, n]``."""
    offset = np.arange(len(idx))[:, None] * n
    return np.bincount((idx + offset).ravel(), minlength=len(idx) * n).reshape(len(idx), n)


def caption_intervals(
    preds: Sequence[str],
    refs: Sequence[Sequence[str]],
    per_sample: dict[str, Sequence[float]],
    idx: np.ndarray,
    level: float = LEVEL,
) -> dict[str, list[float] | None]:
    """Intervals of BLEU-4, CIDEr-D and the per-caption means in ``per_sample``
    (tokenised ``preds`` / ``refs``) over resamples ``idx [B, n]``."""
    counts = counts_of(idx, len(preds))
    out = {"bleu4": percentile_interval(bleu4_of_totals(counts @ bleu_stats(preds, refs)), level),
           "cider": percentile_interval(CiderD(preds, refs).corpus(counts), level)}  # fmt: skip
    out.update(mean_intervals({k: v for k, v in per_sample.items() if k in MEANS}, idx, level))
    return out
