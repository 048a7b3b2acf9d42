"""Spatial QA: accuracy of qualitative answers, relative error of quantitative ones.

Sample metas (``scalar.data.tasks_spatial``) carry ``answer_type`` (``qualitative`` |
``quantitative``), ``value`` (the true number for quantitative questions) and
``question_type``. Qualitative: exact match of normalised text with the target answer
("yes" / "no" / "the red square"). Quantitative: the first number of the output (digits,
or a number word up to twenty) against ``value``:

- relative error ``|p - v| / max(|v|, 1)`` for unitless values (integer pixels or counts,
  so a zero truth is compared with 1); ``|p - v| / |v|`` for metric ones (meta ``unit``
  ``m``, the 3-D templates of ``tasks_spatial3d``), whose number is read with its unit
  (``"45 cm"`` -> 0.45; no unit: metres);
- ``acc``: the answer lies within [v / 2, 2 v] (SpatialVLM's criterion);
- an output without a number is ``unparseable``: wrong, and its relative error is 1
  (the error of answering 0), so that it cannot improve the mean;
- ``quant/medre``: the median relative error (unparseable answers included, at 1).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from typing import Any

from scalar.metrics.keyed import KeyedRecordMetric, grouped, metas_or_none
from scalar.metrics.text import normalize_answer

_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
          "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()  # fmt: skip
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|\b(?:" + "|".join(_WORDS) + r")\b", re.IGNORECASE)
UNPARSEABLE_ERROR = 1.0
_UNITS = {"m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0,
          "cm": 0.01, "centimetre": 0.01, "centimetres": 0.01, "centimeter": 0.01,
          "centimeters": 0.01, "mm": 0.001, "millimetre": 0.001, "millimetres": 0.001,
          "millimeter": 0.001, "millimeters": 0.001, "km": 1000.0, "kilometre": 1000.0,
          "kilometres": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "ft": 0.3048,
          "foot": 0.3048, "feet": 0.3048, "inch": 0.0254, "inches": 0.0254}  # fmt: skip
_UNIT = re.compile(r"\s*(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")\b", re.I)


def parse_number(text: str) -> float | None:
    """The first number in ``text`` (``"87 pixels"`` -> 87.0, ``"three"`` -> 3.0) or None."""
    m = _NUMBER.search(text or "")
    if m is None:
        return None
    word = m.group(0).lower()
    return float(_WORDS.index(word)) if word in _WORDS else float(word)


def parse_metres(text: str) -> float | None:
    """The first number in ``text`` in metres, converted by the unit after it (``"45 cm"``
    -> 0.45, ``"2 feet"`` -> 0.6096; no unit: metres), or None."""
    m = _NUMBER.search(text or "")
    if m is None:
        return None
    value = parse_number(m.group(0))
    unit = _UNIT.match(text, m.end())
    return value * _UNITS[unit.group(1).lower()] if unit else value


def relative_error(pred: float, value: float, metric: bool = False) -> float:
    """``|p - v| / max(|v|, 1)``; ``metric`` (metres): ``|p - v| / |v|``."""
    scale = abs(float(value)) if metric and value else max(abs(float(value)), 1.0)
    return abs(float(pred) - float(value)) / scale


def within_band(pred: float, value: float) -> bool:
    """SpatialVLM's quantitative criterion: ``value / 2 <= pred <= 2 value``."""
    lo, hi = sorted((0.5 * float(value), 2.0 * float(value)))
    return lo <= float(pred) <= hi


class SpatialQAMetrics(KeyedRecordMetric):
    """``update(preds, answers, metas, keys=None)``; ``compute()`` gives ``qual/acc``,
    ``quant/mre``, ``quant/medre``, ``quant/acc``, ``acc`` (both kinds: a quantitative answer counts as
    right within the band), ``n``, ``unparseable``, and the same per ``question_type``
    (``<type>/acc``, ``<type>/mre``)."""

    higher_is_better = True

    def update(self, preds: Sequence[str], answers: Sequence[str], metas, keys=None) -> None:
        if len(preds) != len(answers):
            raise ValueError(f"{len(preds)} predictions for {len(answers)} answers")
        metas = metas_or_none(metas, len(preds))
        recs = []
        for pred, ans, meta in zip(preds, answers, metas):
            meta = meta or {}
            kind = meta.get("answer_type", "qualitative")
            qtype = str(meta.get("question_type") or "")
            rec: dict[str, Any] = {"kind": kind, "groups": (qtype,) if qtype else ()}
            if kind == "quantitative":
                metric = meta.get("unit") == "m"
                parse = parse_metres if metric else parse_number
                value = meta.get("value")
                value = parse(str(ans)) if value is None else float(value)
                number = parse(pred)
                rec["parsed"] = number is not None
                rec["value"], rec["pred_value"] = value, number
                if number is None or value is None:
                    rec.update(correct=False, rel_error=UNPARSEABLE_ERROR)
                else:
                    rec.update(correct=within_band(number, value),
                               rel_error=relative_error(number, value, metric))  # fmt: skip
            else:
                norm = normalize_answer(pred)
                rec["parsed"] = bool(norm)
                rec["correct"] = bool(norm) and norm == normalize_answer(ans)
            recs.append(rec)
        self._add(keys, recs)

    @staticmethod
    def _summary(recs: list[dict[str, Any]]) -> dict[str, float | int]:
        def mean(xs):
            xs = list(xs)
            return sum(xs) / len(xs) if xs else math.nan

        qual = [r for r in recs if r["kind"] != "quantitative"]
        quant = [r for r in recs if r["kind"] == "quantitative"]
        out: dict[str, float | int] = {"acc": mean(r["correct"] for r in recs)}
        if qual:
            out["qual/acc"] = mean(r["correct"] for r in qual)
            out["qual/n"] = len(qual)
        if quant:
            out["quant/acc"] = mean(r["correct"] for r in quant)
            out["quant/mre"] = mean(r["rel_error"] for r in quant)
            out["quant/medre"] = statistics.median(r["rel_error"] for r in quant)
            out["quant/n"] = len(quant)
        out["n"] = len(recs)
        out["unparseable"] = sum(not r["parsed"] for r in recs)
        return out

    @classmethod
    def _by_type(cls, recs: list[dict[str, Any]]) -> dict[str, float | int]:
        full = cls._summary(recs)
        out = {"acc": full["acc"], "n": full["n"]}
        if "quant/mre" in full:
            out["mre"] = full["quant/mre"]
            out["medre"] = full["quant/medre"]
        return out

    def compute(self) -> dict[str, float | int]:
        return self.summarize([r for _, r in self.unique()])

    def summarize(self, recs: list[dict[str, Any]]) -> dict[str, float | int]:
        """The figures of ``recs`` (``compute`` on the split; the bootstrap on resamples)."""
        out = self._summary(recs)
        for name, value in grouped(recs, self._by_type).items():
            if "/" in name:
                out[name] = value
        return out
