"""GRPO: group-normalised advantages, a clipped ratio and a KL to the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from scalar.rl.advantages import grpo_advantages
from scalar.rl.algos.base import PolicyBatch, PolicyGradient
from scalar.rl.sampling import TextRollout


@dataclass
class GRPO(PolicyGradient):
    """Advantages ``(r - mean_G r) / (std_G r + adv_eps)`` per prompt (``adv_std=false``:
    ``r - mean_G r``, as Dr. GRPO), the PPO ratio against the sampling-time log-probs
    clipped to ``1 +- clip_eps``, and a k3 KL to the reference with weight ``kl_beta``
    (the exact cell KL on grounding rows, whose update is on-policy).

    ``mu``: optimizer updates per text rollout batch (PPO's inner epochs; from the second
    on, the ratio to the sampling-time log-probs differs from 1 and the clip acts);
    ``entropy_coef`` / ``varentropy_coef``: the entropy regulariser; ``box_actions``: the
    first ``<box>`` of a text answer is a sampled decoder action (:mod:`scalar.rl.policy_pass`).
    """

    name: ClassVar[str] = "grpo"
    min_group: ClassVar[int] = 2
    kl_beta: float = 0.04
    clip_eps: float = 0.2
    adv_eps: float = 1e-6
    adv_std: bool = True
    mu: int = 1
    entropy_coef: float = 0.0
    varentropy_coef: float = 0.0
    box_actions: bool = False

    def __post_init__(self):
        if int(self.mu) < 1:
            raise ValueError(f"rl.algo.mu must be >= 1 (updates per rollout batch), got {self.mu}")
        self.mu = int(self.mu)

    def advantages(self, batch: PolicyBatch) -> Tensor:
        return grpo_advantages(batch.rewards, self.adv_eps, self.adv_std)

    def sampled_logp(self, ro: TextRollout, new: Tensor) -> Tensor:
        return ro.gen["logprobs"].to(new)
