"""Weighted combination of reward terms, with optional running normalisation.

The registry is the config: a dict of named :class:`RewardSpec` built by Hydra, e.g.::

    rewards:
      iou:
        _target_: scalar.rewards.RewardSpec
        fn: {_target_: scalar.rewards.functions.iou_reward, _partial_: true}
        weight: 1.0
      cider:
        _target_: scalar.rewards.RewardSpec
        fn: {_target_: scalar.rewards.functions.cider_reward, _partial_: true}
        weight: 0.5
        inputs: {candidates: texts}   # parameter -> key of the stage's context
        normalize: true

The stage fills a context dict (``texts``, ``pred_boxes``, ``gt_boxes``, ``scorer``, ...);
each spec calls its function with the parameters it names (by default a parameter
``p`` reads ``context["p"]``).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["RewardSpec", "Rewards", "RunningNorm", "combine_rewards"]

Array = np.ndarray | torch.Tensor


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


class RunningNorm:
    """Running mean / std of a reward over all batches seen (Chan et al. merge).

    ``norm(x)`` updates the statistics with ``x`` (unless ``update=False``) and returns
    ``(x - mean) / (std + eps)``, optionally clipped to ``[-clip, clip]``. The first batch
    is normalised by its own statistics. ``state_dict``/``load_state_dict`` for resume.
    """

    def __init__(self, eps: float = 1e-8, clip: float | None = None):
        self.eps, self.clip = float(eps), clip
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 1.0

    def update(self, x: Array) -> None:
        x = _np(x).ravel()
        if not len(x):
            return
        n_b, mean_b = len(x), float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta**2 * self.count * n_b / n
        self.count = n

    def normalize(self, x: Array) -> Array:
        x = x if isinstance(x, torch.Tensor) else _np(x)
        out = (x - self.mean) / (self.std + self.eps)
        if self.clip is not None:
            out = (
                out.clamp(-self.clip, self.clip)
                if isinstance(out, torch.Tensor)
                else np.clip(out, -self.clip, self.clip)
            )
        return out

    def __call__(self, x: Array, update: bool = True) -> Array:
        if update:
            self.update(x)
        return self.normalize(x)

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.count, self.mean, self.m2 = (
            int(state["count"]),
            float(state["mean"]),
            float(state["m2"]),
        )


def combine_rewards(
    terms: Mapping[str, Array],
    weights: Mapping[str, float],
    norms: Mapping[str, RunningNorm] | None = None,
    update: bool = True,
) -> tuple[Array, dict[str, float]]:
    """``total = sum_k weights[k] * norm_k(terms[k])`` and a log dict of batch means.

    Every term needs a weight and every weight a term (catches config typos). Terms in
    ``norms`` are normalised first (statistics updated unless ``update=False``). The
    total is a float32 tensor on the first tensor term's device if any term is a tensor,
    else a float64 array. Log keys: ``<name>`` (raw mean), ``<name>/norm``, ``total``.
    """
    if set(terms) != set(weights):
        raise KeyError(f"reward terms {sorted(terms)} != weights {sorted(weights)}")
    norms = norms or {}
    values = {k: _np(t).ravel() for k, t in terms.items()}
    sizes = {k: len(v) for k, v in values.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"reward terms differ in batch size: {sizes}")
    total = np.zeros(next(iter(sizes.values()), 0))
    log: dict[str, float] = {}
    mean = lambda x: float(x.mean()) if len(x) else float("nan")  # noqa: E731
    for name, x in values.items():
        log[name] = mean(x)
        if name in norms:
            x = norms[name](x, update=update)
            log[f"{name}/norm"] = mean(x)
        total += float(weights[name]) * x
    log["total"] = mean(total)
    tensors = [t for t in terms.values() if isinstance(t, torch.Tensor)]
    if tensors:
        return torch.as_tensor(total, dtype=torch.float32, device=tensors[0].device), log
    return total, log


def _signature(fn: Callable) -> tuple[list[inspect.Parameter], set[str], bool]:
    """Named parameters, those bound by ``functools.partial``, whether ``**kwargs`` exists."""
    bound = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    all_params = inspect.signature(fn).parameters.values()
    params = [p for p in all_params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return params, bound, any(p.kind == p.VAR_KEYWORD for p in all_params)


class RewardSpec:
    """One reward term: a function, its weight, where its inputs come from.

    ``inputs`` maps a parameter of ``fn`` to a context key (default: the same name).
    Parameters bound by ``functools.partial`` (Hydra ``_partial_``) keep their values.
    ``normalize``: pass the term through a :class:`RunningNorm` before weighting.
    (A plain class, not a dataclass, so that Hydra keeps instances as objects.)
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        weight: float = 1.0,
        inputs: Mapping[str, str] | None = None,
        normalize: bool = False,
        name: str = "",
    ):
        if not callable(fn):
            raise TypeError(f"reward {name!r}: fn must be callable, got {type(fn).__name__}")
        self.fn, self.weight, self.normalize, self.name = fn, float(weight), bool(normalize), name
        self.inputs = {str(k): str(v) for k, v in (inputs or {}).items()}

    def __repr__(self) -> str:
        return f"RewardSpec({self.name or self.fn!r}, weight={self.weight})"

    def __call__(self, context: Mapping[str, Any]) -> np.ndarray:
        params, bound, var_kw = _signature(self.fn)
        inputs = self.inputs
        unknown = set(inputs) - {p.name for p in params}
        if unknown and not var_kw:
            raise KeyError(f"reward {self.name!r}: inputs for unknown parameters {sorted(unknown)}")
        kwargs = {name: context[inputs[name]] for name in unknown if inputs[name] in context}
        for p in params:
            key = inputs.get(p.name, p.name)
            if p.name in bound and p.name not in inputs:
                continue
            if key in context:
                kwargs[p.name] = context[key]
            elif p.default is p.empty or p.name in inputs:
                raise KeyError(
                    f"reward {self.name!r} needs {key!r} in the context (has {sorted(context)})"
                )
        return _np(self.fn(**kwargs))


class Rewards:
    """A named set of :class:`RewardSpec` with their running norms.

    ``rewards(context) -> (total, log, terms)``; ``state_dict``/``load_state_dict`` carry
    the norms for resume.
    """

    def __init__(self, specs: Mapping[str, RewardSpec], norm_clip: float | None = None):
        if not specs:
            raise ValueError("no reward terms configured")
        self.specs = dict(specs)
        for name, spec in self.specs.items():
            spec.name = spec.name or name
        self.norms = {n: RunningNorm(clip=norm_clip) for n, s in self.specs.items() if s.normalize}

    def __call__(
        self, context: Mapping[str, Any], update: bool = True
    ) -> tuple[Array, dict[str, float], dict[str, np.ndarray]]:
        terms = {name: spec(context) for name, spec in self.specs.items()}
        weights = {name: spec.weight for name, spec in self.specs.items()}
        total, log = combine_rewards(terms, weights, self.norms, update=update)
        return total, log, terms

    def state_dict(self) -> dict[str, dict[str, float]]:
        return {name: norm.state_dict() for name, norm in self.norms.items()}

    def load_state_dict(self, state: Mapping[str, Mapping[str, float]]) -> None:
        missing = set(self.norms) - set(state)
        if missing:
            raise KeyError(f"no saved statistics for reward norms {sorted(missing)}")
        for name, norm in self.norms.items():
            norm.load_state_dict(state[name])
