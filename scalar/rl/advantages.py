"""Advantages and policy losses of the RL stage (pure tensor functions).

Shapes: ``rewards [B, G]`` (B prompts, G samples each); token tensors ``[N, L]`` with a
``mask [N, L]`` of generated tokens (1 up to and including ``</s>``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "dpo_loss",
    "grpo_advantages",
    "grpo_loss",
    "k3_kl",
    "scst_advantages",
]


def scst_advantages(rewards: Tensor, greedy_rewards: Tensor) -> Tensor:
    """Self-critical advantages: ``reward(sample) - reward(greedy decode of its prompt)``.

    ``rewards [B, G]`` (or ``[B]``), ``greedy_rewards [B]``; returns the shape of ``rewards``.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    greedy = torch.as_tensor(greedy_rewards, dtype=torch.float32, device=rewards.device)
    if greedy.shape != rewards.shape[:1]:
        raise ValueError(f"greedy rewards {tuple(greedy.shape)} for rewards {tuple(rewards.shape)}")
    return rewards - greedy.view(-1, *([1] * (rewards.dim() - 1)))


def grpo_advantages(rewards: Tensor, eps: float = 1e-6, scale: bool = True) -> Tensor:
    """Group-normalised advantages ``(r - mean_g r) / (std_g r + eps)`` per prompt.

    ``std`` is the population standard deviation of the group (a group whose rewards are
    all equal gets advantages 0). ``scale=False``: ``r - mean_g r`` only (as in Dr. GRPO:
    a group whose rewards barely differ keeps small advantages instead of unit ones).
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [B, G], got {tuple(rewards.shape)}")
    mean = rewards.mean(dim=1, keepdim=True)
    if not scale:
        return rewards - mean
    std = rewards.std(dim=1, unbiased=False, keepdim=True)
    return (rewards - mean) / (std + eps)


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(policy || ref): ``exp(d) - d - 1``, ``d = ref - policy``.

    Non-negative, zero where the two log-probabilities are equal.
    """
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1.0


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over each row's masked tokens, then over rows (rows without tokens count 0)."""
    m = mask.to(x.dtype)
    return ((x * m).sum(1) / m.sum(1).clamp(min=1.0)).mean()


def grpo_loss(
    logprobs_new: Tensor,
    logprobs_old: Tensor,
    logprobs_ref: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    kl_beta: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped-ratio policy loss with a k3 KL penalty to the reference, per token.

    ``loss = -mean_rows mean_tokens [min(rho A, clip(rho, 1-eps, 1+eps) A) - beta KL]``
    with ``rho = exp(new - old)``; ``advantages [N]`` (one per sequence) or ``[N, L]``.
    Returns the loss and detached stats: ``kl``, ``clip_frac``, ``ratio``.
    """
    adv = advantages.to(logprobs_new.dtype)
    if adv.dim() == 1:
        adv = adv[:, None]
    ratio = torch.exp(logprobs_new - logprobs_old.detach())
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    surrogate = torch.minimum(ratio * adv, clipped * adv)
    per_token = surrogate
    kl = torch.zeros_like(logprobs_new)
    if logprobs_ref is not None:
        kl = k3_kl(logprobs_new, logprobs_ref.detach())
        if kl_beta:
            per_token = surrogate - kl_beta * kl
    loss = -_masked_mean(per_token, mask)
    m = mask.bool()
    with torch.no_grad():
        stats = {
            "kl": _masked_mean(kl.detach(), mask),
            "clip_frac": ((ratio.detach() - clipped.detach()).abs() > 0)[m].float().mean()
            if m.any()
            else ratio.new_zeros(()),
            "ratio": _masked_mean(ratio.detach(), mask),
        }
    return loss, stats


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float = 0.1,
) -> tuple[Tensor, dict[str, Tensor]]:
    """DPO: ``-log sigmoid(beta [(pi_c - ref_c) - (pi_r - ref_r)])``, mean over pairs.

    Inputs are sequence log-probabilities ``[P]`` (sums over completion tokens).
    Returns the loss and detached stats: ``margin`` (the bracket) and ``accuracy``
    (share of pairs with a positive margin).
    """
    margin = (policy_chosen - ref_chosen.detach()) - (policy_rejected - ref_rejected.detach())
    loss = -F.logsigmoid(beta * margin).mean()
    stats = {
        "margin": margin.detach().mean(),
        "accuracy": (margin.detach() > 0).float().mean(),
    }
    return loss, stats
