"""Region-concept contrastive losses: Student-t kernel (SCALAR) and InfoNCE.

Both take region embeddings ``r [C, D]`` and concept embeddings ``c [C, D]`` (row ``i``
of each describes the same chain item), ``ids [C]`` (equal ids are positives of each
other, so two objects of one concept in a batch are not pushed apart) and optional
``levels [C]`` (chain levels; only items of the same level are compared). For each level
the loss is the multi-positive cross entropy
``-log(sum_{j: id_j = id_i} k_ij / sum_j k_ij)`` averaged over rows ``i`` and, when
``symmetric``, averaged with the same over columns (concept -> region). Levels are summed
with ``level_weights`` (weight 1 each when ``None``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def multi_positive_ce(
    logits: Tensor, ids: Tensor, levels: Tensor, symmetric: bool = True
) -> dict[int, Tensor]:
    """Per-level multi-positive cross entropy of a ``[C, C]`` log-kernel matrix."""
    same_level = levels[:, None] == levels[None, :]
    pos = (ids[:, None] == ids[None, :]) & same_level
    neg_inf = torch.finfo(logits.dtype).min
    all_ = logits.masked_fill(~same_level, neg_inf)
    pos_ = logits.masked_fill(~pos, neg_inf)
    item = all_.logsumexp(1) - pos_.logsumexp(1)
    if symmetric:
        item = 0.5 * (item + all_.logsumexp(0) - pos_.logsumexp(0))
    return {int(lv): item[levels == lv].mean() for lv in torch.unique(levels).tolist()}


def _combine(
    per_level: dict[int, Tensor], weights: list[float] | dict[int, float] | None
) -> Tensor:
    total = None
    for lv, loss in per_level.items():
        if weights is None:
            w = 1.0
        elif isinstance(weights, dict):
            w = weights.get(lv, 1.0)
        elif 0 <= lv < len(weights):
            w = weights[lv]
        else:
            raise ValueError(f"no level weight for level {lv} (level_weights has {len(weights)})")
        total = w * loss if total is None else total + w * loss
    return total


def _check(r: Tensor, c: Tensor, ids: Tensor, levels: Tensor | None) -> Tensor:
    if r.shape != c.shape or r.dim() != 2:
        raise ValueError(f"region {tuple(r.shape)} and concept {tuple(c.shape)} must be [C, D]")
    if ids.shape != r.shape[:1] or (levels is not None and levels.shape != ids.shape):
        raise ValueError("ids and levels must be [C], one per region/concept row")
    return torch.zeros_like(ids) if levels is None else levels


class _LearnablePositive(nn.Module):
    """A positive scalar stored as its log; a buffer when not learnable."""

    def __init__(self, value: float, learnable: bool):
        super().__init__()
        if value <= 0:
            raise ValueError(f"expected a positive value, got {value}")
        log = torch.tensor(math.log(value))
        if learnable:
            self.log = nn.Parameter(log)
        else:
            self.register_buffer("log", log)

    def forward(self) -> Tensor:
        return self.log.exp()


class TDistContrastiveLoss(nn.Module):
    """Student-t kernel contrastive loss.

    Embeddings are L2-normalised and multiplied by ``sqrt(scale)``, so
    ``|r - c|^2 = 2 * scale * (1 - cos(r, c))``. The kernel is
    ``k = (1 + |r - c|^2 / nu) ** (-(nu + 1) / 2)``, used in log space
    (``log k = -(nu + 1) / 2 * log1p(|r - c|^2 / nu)``). As ``nu -> inf``, ``log k ->
    -|r - c|^2 / 2 = scale * cos - scale``: InfoNCE with logit scale ``scale``
    (temperature ``1 / scale``). ``nu = 1`` is the Cauchy kernel.
    Returns ``{'tdist', 'tdist_l{level}', 'nu', 'scale', 'loss'}``.
    """

    def __init__(
        self,
        nu: float = 1.0,
        learnable_nu: bool = False,
        scale: float = 10.0,
        learnable_scale: bool = False,
        level_weights: list[float] | dict[int, float] | None = None,
        symmetric: bool = True,
    ):
        super().__init__()
        self._nu = _LearnablePositive(nu, learnable_nu)
        self._scale = _LearnablePositive(scale, learnable_scale)
        self.level_weights, self.symmetric = level_weights, symmetric

    @property
    def nu(self) -> Tensor:
        return self._nu()

    @property
    def scale(self) -> Tensor:
        return self._scale()

    def log_kernel(self, r: Tensor, c: Tensor) -> Tensor:
        """``[C, C]`` matrix of ``log k(r_i, c_j)``."""
        cos = F.normalize(r.float(), dim=-1) @ F.normalize(c.float(), dim=-1).T
        d2 = (2 * self.scale * (1 - cos)).clamp(min=0)
        nu = self.nu
        return -(nu + 1) / 2 * torch.log1p(d2 / nu)

    def forward(
        self, r: Tensor, c: Tensor, ids: Tensor, levels: Tensor | None = None
    ) -> dict[str, Tensor]:
        levels = _check(r, c, ids, levels)
        out = {"nu": self.nu.detach(), "scale": self.scale.detach()}
        if len(r) == 0:
            zero = (r.sum() + c.sum()) * 0.0 + self.nu * 0.0
            return {**out, "tdist": zero, "loss": zero}
        per_level = multi_positive_ce(self.log_kernel(r, c), ids, levels, self.symmetric)
        total = _combine(per_level, self.level_weights)
        out.update({f"tdist_l{lv}": v for lv, v in per_level.items()})
        return {**out, "tdist": total, "loss": total}


class InfoNCELoss(nn.Module):
    """Multi-positive InfoNCE: softmax over ``cos(r_i, c_j) / temperature``.

    Returns ``{'infonce', 'infonce_l{level}', 'temperature', 'loss'}``.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable: bool = False,
        level_weights: list[float] | dict[int, float] | None = None,
        symmetric: bool = True,
    ):
        super().__init__()
        self._temperature = _LearnablePositive(temperature, learnable)
        self.level_weights, self.symmetric = level_weights, symmetric

    @property
    def temperature(self) -> Tensor:
        return self._temperature()

    def forward(
        self, r: Tensor, c: Tensor, ids: Tensor, levels: Tensor | None = None
    ) -> dict[str, Tensor]:
        levels = _check(r, c, ids, levels)
        out = {"temperature": self.temperature.detach()}
        if len(r) == 0:
            zero = (r.sum() + c.sum()) * 0.0 + self.temperature * 0.0
            return {**out, "infonce": zero, "loss": zero}
        cos = F.normalize(r.float(), dim=-1) @ F.normalize(c.float(), dim=-1).T
        per_level = multi_positive_ce(cos / self.temperature, ids, levels, self.symmetric)
        total = _combine(per_level, self.level_weights)
        out.update({f"infonce_l{lv}": v for lv, v in per_level.items()})
        return {**out, "infonce": total, "loss": total}
