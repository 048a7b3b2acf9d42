"""Entropy and varentropy of the policy's next-token distributions (a regulariser term).

Entropy ``H = -sum_v p_v log p_v`` (diversity); varentropy ``V = sum_v p_v (log p_v + H)^2``,
the variance of the surprisal ``-log p`` (how uneven the distribution's confidence is).
The SCST seed jointly minimises ``lambda * (V - H)`` (lambda ~ 1e-4) with the policy loss:
keep vocabulary diverse while keeping token distributions consistent.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["entropy_regulariser", "varentropy_entropy_penalty"]


def entropy_regulariser(logits: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-sequence mean entropy and mean varentropy over the unmasked positions.

    ``logits [B, T, V]`` (log-probabilities work too: ``log_softmax`` leaves them as they
    are), ``mask [B, T]`` (1 = a generated token). Returns ``(entropy [B], varentropy
    [B])`` in nats, differentiable; a sequence with no unmasked position gives 0.
    Vocabulary entries at ``-inf`` (banned tokens) are handled.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got {tuple(logits.shape)}")
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), -1)
    p = logp.exp()
    logp = torch.where(p > 0, logp, torch.zeros_like(logp))  # finite where p = 0
    ent = -(p * logp).sum(-1)
    var = (p * (logp + ent.unsqueeze(-1)) ** 2).sum(-1)
    if mask is None:
        mask = torch.ones(logits.shape[:2], device=logits.device)
    if mask.shape != logits.shape[:2]:
        raise ValueError(
            f"mask {tuple(mask.shape)} does not match logits {tuple(logits.shape[:2])}"
        )
    m = mask.to(ent.dtype)
    n = m.sum(1).clamp(min=1.0)
    return (ent * m).sum(1) / n, (var * m).sum(1) / n


def varentropy_entropy_penalty(
    logits: Tensor,
    mask: Tensor | None = None,
    entropy_weight: float = 1.0,
    varentropy_weight: float = 1.0,
) -> Tensor:
    """Scalar loss term ``mean_B(varentropy_weight * V - entropy_weight * H)`` to minimise."""
    ent, var = entropy_regulariser(logits, mask)
    return (varentropy_weight * var - entropy_weight * ent).mean()
