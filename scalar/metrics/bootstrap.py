"""Percentile bootstrap confidence intervals of evaluation figures.

A figure (an accuracy, a mean IoU, a micro precision, a corpus CIDEr ...) is a function
of the split's per-sample records. The bootstrap draws ``resamples`` sets of ``n``
samples with replacement from the ``n`` scored samples (a fixed seed, so the same run
gives the same intervals), recomputes the figure on each, and reports the 2.5th and
97.5th percentiles of the recomputed values as the 95% interval. Group figures
(``<group>/acc``) are recomputed on the samples of the group that each resample holds.
A resample on which a figure is undefined (a group absent from it) is left out of that
figure's percentiles; a figure with no defined value gets ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

LEVEL = 0.95
RESAMPLES = 1000
COUNTS = ("n", "unparseable", "skipped", "mentions", "objects")


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` sample indices drawn uniformly with replacement."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 and resamples >= 1, got n={n}, resamples={resamples}")
    return np.random.default_rng(int(seed)).integers(0, n, size=(int(resamples), n))


def percentile_interval(values: Sequence[float], level: float = LEVEL) -> list[float] | None:
    """``[low, high]``: the central ``level`` share of the finite ``values`` (None: none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    tail = 50.0 * (1.0 - float(level))
    lo, hi = np.percentile(v, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def is_figure(name: str, value: Any) -> bool:
    """Whether ``name`` is a score (gets an interval), not a count (``n``, ``<g>/n`` ...)."""
    return isinstance(value, float) and name.rsplit("/", 1)[-1] not in COUNTS


def count_for(name: str, figures: dict[str, Any]) -> int | None:
    """The number of samples behind ``name``: ``<prefix>/n`` of its group, else ``n``."""
    prefix = name.rsplit("/", 1)[0] if "/" in name else ""
    key = f"{prefix}/n" if prefix else "n"
    value = figures.get(key, figures.get("n"))
    return None if value is None else int(value)


def bootstrap_intervals(
    records: Sequence[Any],
    summarize: Callable[[list[Any]], dict[str, Any]],
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, list[float] | None]:
    """``{figure: [low, high]}`` for every figure ``summarize(records)`` returns, each
    recomputed by ``summarize`` on ``resamples`` resampled record lists."""
    if not records or resamples < 1:
        return {}
    names = [k for k, v in summarize(list(records)).items() if is_figure(k, v)]
    draws: dict[str, list[float]] = {k: [] for k in names}
    for idx in resample_indices(len(records), resamples, seed):
        got = summarize([records[i] for i in idx])
        for k in names:
            value = got.get(k, math.nan)
            draws[k].append(math.nan if value is None else float(value))
    return {k: percentile_interval(v, level) for k, v in draws.items()}


def mean_intervals(
    per_sample: dict[str, Sequence[float]], idx: np.ndarray, level: float = LEVEL
) -> dict[str, list[float] | None]:
    """Intervals of means of per-sample values (``{name: [n values]}``) over resamples
    ``idx [B, n]`` (figures that are the plain mean of a per-sample score)."""
    return {k: percentile_interval(np.asarray(v, dtype=np.float64)[idx].mean(axis=1), level)
            for k, v in per_sample.items()}  # fmt: skip


def metric_intervals(
    metric, resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> dict[str, list[float] | None]:
    """Intervals of every figure of a keyed record metric (after its ``compute``): its own
    ``intervals`` when it has one (corpus caption scores), else ``summarize`` recomputed
    on resampled records."""
    own = getattr(metric, "intervals", None)
    if own is not None:
        return own(resamples, seed)
    return bootstrap_intervals([r for _, r in metric.unique()], metric.summarize, resamples,
                               seed, level)  # fmt: skip
