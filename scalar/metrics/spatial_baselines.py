"""Baselines of spatial QA, scored with ``SpatialQAMetrics`` like a model's answers.

- ``constant``: one answer per answer kind: "yes" for qualitative questions, the median
  training value for quantitative ones (metric values and unitless ones, e.g. counts or
  pixels, separately);
- ``prior``: per question type, the most common training answer (qualitative) or the
  median training value (quantitative): what a model that ignores the image can reach.

Inputs are the ``meta`` dicts and target answers of spatial-QA samples
(``question_type``, ``answer_type``, ``value``, ``unit``).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from scalar.metrics.spatial_qa import SpatialQAMetrics


def _fmt(value: float, metric: bool) -> str:
    return f"{value:.2f} metres" if metric else f"{value:g}"


def _quantity_key(meta: dict[str, Any]) -> str:
    return "m" if meta.get("unit") == "m" else "unitless"


def fit_prior(answers: Sequence[str], metas: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The constant and per-type answers of the training samples ``answers`` / ``metas``."""
    qual_by_type: dict[str, Counter] = {}
    quant_by_type: dict[str, list[float]] = {}
    quant_by_key: dict[str, list[float]] = {}
    metric_type: dict[str, bool] = {}
    for ans, meta in zip(answers, metas, strict=True):
        qtype = str(meta.get("question_type"))
        if meta.get("answer_type") == "quantitative":
            v = float(meta["value"])
            quant_by_type.setdefault(qtype, []).append(v)
            quant_by_key.setdefault(_quantity_key(meta), []).append(v)
            metric_type[qtype] = meta.get("unit") == "m"
        else:
            qual_by_type.setdefault(qtype, Counter())[str(ans)] += 1
    prior = {t: c.most_common(1)[0][0] for t, c in sorted(qual_by_type.items())}
    for t, vs in sorted(quant_by_type.items()):
        prior[t] = _fmt(statistics.median(vs), metric_type[t])
    constant = {k: _fmt(statistics.median(vs), k == "m") for k, vs in quant_by_key.items()}
    return {"prior": prior, "constant": {"qualitative": "yes", **constant}}


def baseline_answer(fit: dict[str, Any], meta: dict[str, Any], which: str) -> str:
    """The answer of baseline ``which`` (``constant`` | ``prior``) to a sample; a type or
    quantity unseen in training answers "yes" / "0"."""
    if which == "prior":
        return fit["prior"].get(str(meta.get("question_type")), "0")
    if which != "constant":
        raise ValueError(f"unknown baseline {which!r}; valid: constant, prior")
    if meta.get("answer_type") == "quantitative":
        return fit["constant"].get(_quantity_key(meta), "0")
    return fit["constant"]["qualitative"]


def score_baselines(
    fit: dict[str, Any], answers: Sequence[str], metas: Sequence[dict[str, Any]]
) -> dict[str, dict[str, float | int]]:
    """``{baseline: SpatialQAMetrics figures}`` on the evaluation samples."""
    out = {}
    for which in ("constant", "prior"):
        metric = SpatialQAMetrics()
        preds = [baseline_answer(fit, m, which) for m in metas]
        metric.update(preds, list(answers), list(metas))
        out[which] = metric.compute()
    return out


def _headline(scores: dict) -> dict:
    """Overall figures only (no per-type ones)."""
    return {k: v for k, v in scores.items() if "/" not in k or k.split("/")[0] in ("qual", "quant")}


def split_baselines(by_split: dict[str, list[dict]]) -> dict:
    """The constant and prior baselines fitted on the ``train`` rows and scored on every other
    split's rows (rows: dicts with ``answer`` and the template fields); ``{}`` without train."""
    train = by_split.get("train")
    if not train:
        return {}
    fit = fit_prior([r["answer"] for r in train], list(train))
    out: dict = {"fit_on": "train", "answers": fit}
    for split, rows in by_split.items():
        if split != "train" and rows:
            scores = score_baselines(fit, [r["answer"] for r in rows], rows)
            out[split] = {b: _headline(v) for b, v in scores.items()}
    return out
