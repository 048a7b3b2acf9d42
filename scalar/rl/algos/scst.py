"""SCST: self-critical sequence training, the greedy answer's reward as the baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from scalar.rl.advantages import scst_advantages
from scalar.rl.algos.base import PolicyBatch, PolicyGradient
from scalar.rl.sampling import GroundRollout, RolloutContext, TextRollout


@dataclass
class SCST(PolicyGradient):
    """Advantage ``r - r(greedy answer of the same prompt)`` (text rows: the greedy
    completion; grounding rows: the decoder's greedy box), a k3 KL to the reference with
    weight ``kl_beta`` (the exact cell KL on grounding rows).

    The update is on-policy: the ratio is 1, nothing is clipped, and the loss's gradient
    is that of ``mean_rows mean_tokens [(r - b) * -log p + kl_beta KL]``.
    """

    name: ClassVar[str] = "scst"
    kl_beta: float = 0.04
    entropy_coef: float = 0.0  # weight of -H (next-token entropy) in the loss
    varentropy_coef: float = 0.0  # weight of V (varentropy) in the loss
    box_actions: bool = False  # a text answer's first <box> is a sampled decoder action
    # the shared clipped surrogate with a clip that never binds (the ratio is exactly 1;
    # with a zero-width clip the clamp would stop half of the gradient at its bounds)
    clip_eps: ClassVar[float] = 0.2

    def advantages(self, batch: PolicyBatch) -> Tensor:
        if batch.baseline is None:
            raise ValueError("SCST needs the rewards of the greedy answers (batch.baseline)")
        return scst_advantages(batch.rewards, batch.baseline)

    @torch.no_grad()
    def baseline(self, ctx: RolloutContext, prompts: dict, ro: TextRollout | GroundRollout):
        sampler, device = ctx.sampler, prompts["prompt_input_ids"].device
        if isinstance(ro, GroundRollout):
            greedy = ro.policy["boxes"].detach().tolist()
            total = sampler.score_ground(ctx.policy, prompts, greedy, update=False)[0]
        else:
            budget = sampler.sampling.max_new_tokens
            greedy = ctx.policy.generate(prompts, do_sample=False, max_new_tokens=budget)
            total = sampler.score(ctx.policy, prompts, greedy, update=False)[0]
        return torch.as_tensor(total, device=device), float(np.mean(total))
