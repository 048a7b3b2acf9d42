"""Score generated rows with a reward registry, term by term, where each term applies.

Rows of one step can belong to different prompt kinds (describe, format, rec, caption...),
each with its own reward context. A term applies to a context that holds every input its
function needs; rows whose context lacks them get 0 for that term and are left out of its
logged mean and its running normalisation.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scalar.rewards.combine import Rewards, RewardSpec


def required_keys(spec: RewardSpec) -> set[str]:
    """Context keys ``spec`` needs: its parameters without defaults, through ``inputs``."""
    fn = spec.fn
    bound = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    keys = set(spec.inputs.values())
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in bound:
            continue
        if p.default is p.empty or p.name in spec.inputs:
            keys.add(spec.inputs.get(p.name, p.name))
    return keys


def score_rows(
    rewards: Rewards,
    contexts: Sequence[tuple[Sequence[int], Mapping[str, Any]]],
    n_rows: int,
    extra: Mapping[str, Any] | None = None,
    update: bool = True,
) -> tuple[np.ndarray, dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(total [N], log, terms {name: [N]}, applies {name: bool [N]})``.

    ``extra``: context entries shared by every context (e.g. a CIDEr scorer).
    ``total = sum_k weight_k * norm_k(term_k)`` over the rows each term applies to.
    Log keys: ``<name>`` (mean where it applies; absent if nowhere), ``total`` and
    ``coverage`` (share of rows at least one term applies to).
    """
    terms, applies = {}, {}
    total = np.zeros(n_rows)
    log: dict[str, float] = {}
    for name, spec in rewards.specs.items():
        need = required_keys(spec)
        value, mask = np.zeros(n_rows), np.zeros(n_rows, dtype=bool)
        for rows, ctx in contexts:
            ctx = {**(extra or {}), **ctx}
            if not rows or not need <= set(ctx):
                continue
            idx = np.asarray(rows, dtype=int)
            value[idx] = np.asarray(spec(ctx), dtype=np.float64).reshape(-1)
            mask[idx] = True
        terms[name], applies[name] = value, mask
        if not mask.any():
            continue
        log[name] = float(value[mask].mean())
        x = value[mask]
        if name in rewards.norms:
            x = np.asarray(rewards.norms[name](x, update=update), dtype=np.float64)
        total[mask] += spec.weight * x
    covered = np.zeros(n_rows, dtype=bool)
    for m in applies.values():
        covered |= m
    log["coverage"] = float(covered.mean()) if n_rows else 0.0
    log["total"] = float(total.mean()) if n_rows else float("nan")
    return total, log, terms, applies
