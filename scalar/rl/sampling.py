"""How the RL stage samples (``Sampling``) and the rollouts it runs with it (``Sampler``).

A text rollout repeats each prompt G times, samples completions with
``model.generate(do_sample=True)`` (KV cache) and scores them; a grounding rollout samples
G boxes per query from the spatial decoder's cell distribution (:mod:`scalar.rl.grounding`)
and scores them. Rewards come from the prompt source's reward contexts
(:mod:`scalar.rl.sources`) through the reward registry (:func:`scalar.rl.scoring.score_rows`).
The algorithms (:mod:`scalar.rl.algos`) turn rollouts into losses.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scalar.rewards.combine import Rewards
from scalar.rl.grounding import (
    action_logprob,
    categorical_kl,
    cell_logprobs,
    placed_boxes,
    sample_cells,
    sample_geometry,
)
from scalar.rl.rollout import repeat_rows, sample_groups, token_logprobs
from scalar.rl.scoring import score_rows


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of the RL stage (``conf/rl/sampling``).

    ``group_size`` G samples per prompt; ``temperature`` / ``top_k`` (0: all) / ``top_p``
    (1: all) / ``max_new_tokens`` for text completions (the trained distribution uses the
    same temperature); ``ground_temperature``: grounding rows sample cells from
    ``softmax(attention logits / t)``; ``ground_geometry_std``: (centre std in cells,
    log-size std) of the Gaussian geometry around the decoder's (0 keeps it fixed).
    """

    group_size: int = 4
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 16
    ground_temperature: float = 1.0
    ground_geometry_std: Sequence[float] = (0.15, 0.05)

    def __post_init__(self):
        std = tuple(float(v) for v in self.ground_geometry_std)
        checks = {
            "group_size >= 1": int(self.group_size) >= 1,
            "temperature > 0": float(self.temperature) > 0,
            "top_k >= 0": int(self.top_k) >= 0,
            "0 < top_p <= 1": 0 < float(self.top_p) <= 1,
            "max_new_tokens >= 1": int(self.max_new_tokens) >= 1,
            "ground_temperature > 0": float(self.ground_temperature) > 0,
            "ground_geometry_std: two values >= 0": len(std) == 2 and min(std) >= 0,
        }
        for rule, ok in checks.items():
            if not ok:
                raise ValueError(f"rl.sampling: {rule} (got {self})")
        object.__setattr__(self, "ground_geometry_std", std)

    @property
    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``model.generate`` for the text samples."""
        return {"temperature": float(self.temperature), "top_k": int(self.top_k),
                "top_p": float(self.top_p), "max_new_tokens": int(self.max_new_tokens)}  # fmt: skip


@dataclass
class TextRollout:
    """G sampled completions per prompt and their rewards (``rewards [B, G]``)."""

    rep: dict  # the prompt batch, every row repeated G times
    gen: dict  # generation: texts, tokens, lengths, logprobs, boxes
    total: np.ndarray  # [B*G] weighted reward of each sample
    log: dict[str, float]  # reward terms' means, total, coverage
    terms: dict[str, np.ndarray]  # name -> [B*G] raw term
    applies: dict[str, np.ndarray]  # name -> [B*G] where the term applies
    rewards: Tensor  # [B, G] float32 total


@dataclass
class GroundRollout:
    """G sampled boxes per query, their log-probabilities and rewards."""

    rep: dict  # the prompt batch, every row repeated G times
    policy: dict  # ``cell_logprobs`` of the policy (with gradients)
    ref: dict  # ``cell_logprobs`` of the reference
    cells: Tensor  # [B*G] sampled cells
    taken: tuple[Tensor, Tensor]  # sampled (offset, log_size) [B*G, 2]
    boxes: Tensor  # [B*G, 4] sampled boxes in [0, 1]
    total: np.ndarray  # [B*G] weighted reward
    log: dict[str, float]  # reward terms' means, total, coverage
    contexts: list  # reward contexts (descriptions of the boxes where asked for)
    rewards: Tensor  # [B, G] float32 total
    logp: Tensor = field(default=None)  # [B*G, 1] log-probability of each action (grad)
    kl: Tensor = field(default=None)  # exact KL(policy || reference) of the cells, mean


@dataclass
class RolloutContext:
    """What an algorithm's step works with: the policy, the frozen reference, the sampler."""

    policy: nn.Module
    reference: nn.Module
    sampler: Sampler


class Sampler:
    """Runs rollouts of ``sampling`` and scores them with ``rewards`` in the contexts that
    ``source`` builds (``source.contexts`` / ``source.ground_contexts`` / ``source.extra``)."""

    def __init__(self, sampling: Sampling, rewards: Rewards, source: Any):
        self.sampling, self.rewards, self.source = sampling, rewards, source
        self.reward_seconds = 0.0  # time spent building reward contexts and scoring (summed)

    @property
    def group_size(self) -> int:
        return int(self.sampling.group_size)

    # ------------------------------------------------------------------ rewards
    def score(self, model, batch: Mapping[str, Any], gen: Mapping[str, Any], update=True):
        """``(total, log, terms, applies)`` of generated rows (see ``score_rows``)."""
        start, device = time.perf_counter(), batch["prompt_input_ids"].device
        contexts = self.source.contexts(model, batch, gen, device)
        out = score_rows(self.rewards, contexts, len(gen["texts"]), self.source.extra, update)
        self.reward_seconds += time.perf_counter() - start
        return out

    def score_ground(self, model, batch: Mapping[str, Any], boxes: Sequence, update=True):
        """``(total [N], log, contexts)`` of ``ground`` rows whose boxes are ``boxes``."""
        start, device = time.perf_counter(), batch["prompt_input_ids"].device
        ctx = self.source.ground_contexts(model, batch, boxes, device)
        total, logd, _, _ = score_rows(self.rewards, ctx, len(boxes), self.source.extra, update)
        self.reward_seconds += time.perf_counter() - start
        return total, logd, ctx

    # ------------------------------------------------------------------ text rows
    def logprobs(self, model, batch, tokens: Tensor, lengths: Tensor, temperature=None):
        """Teacher-forced ``(log-probs [N, L], mask)``, at the sampling temperature unless
        ``temperature`` is given (gradients flow outside ``no_grad``)."""
        t = self.sampling.temperature if temperature is None else temperature
        return token_logprobs(model, batch, tokens, lengths, t)

    @torch.no_grad()
    def text(self, model, prompts: Mapping[str, Any]) -> TextRollout | None:
        """G sampled completions per prompt, scored; ``None`` when no reward term applies."""
        g = self.group_size
        rep, gen = sample_groups(model, prompts, g, self.sampling.generate_kwargs)
        total, logd, terms, applies = self.score(model, rep, gen)
        if not logd["coverage"]:
            return None
        device = prompts["prompt_input_ids"].device
        rewards = torch.as_tensor(total, dtype=torch.float32, device=device).view(-1, g)
        return TextRollout(rep, gen, total, logd, terms, applies, rewards)

    # ------------------------------------------------------------------ grounding rows
    def ground(self, model, reference, prompts: Mapping[str, Any]) -> GroundRollout | None:
        """G boxes per query sampled from the policy's cell distribution and its Gaussian
        geometry, scored; the action log-probabilities keep their gradients. ``None`` when
        no reward term applies."""
        g, t = self.group_size, self.sampling.ground_temperature
        stds = self.sampling.ground_geometry_std
        rep = repeat_rows(prompts, g)
        policy = cell_logprobs(model, prompts, t)  # with gradients
        h, w = policy["grid_hw"]
        with torch.no_grad():
            cells = sample_cells(policy["logp"], g)
            offset, log_size = (policy[k].repeat_interleave(g, 0) for k in ("offset", "log_size"))
            taken = sample_geometry(offset, log_size, stds, (1 / w, 1 / h))
            boxes = placed_boxes(cells, *taken, policy["grid_hw"])
            total, logd, contexts = self.score_ground(model, rep, boxes.tolist())
            ref = cell_logprobs(reference, prompts, t)
        if not logd["coverage"]:
            return None
        device = prompts["prompt_input_ids"].device
        rewards = torch.as_tensor(total, dtype=torch.float32, device=device).view(-1, g)
        out = GroundRollout(rep, policy, ref, cells, taken, boxes, total, logd, contexts, rewards)
        out.logp = action_logprob(policy, cells, taken, g, stds)[:, None]  # one action per row
        # KL of the temperature-1 distributions: the ones the greedy box averages over
        out.kl = categorical_kl(policy["greedy_logp"], ref["greedy_logp"]).mean()
        return out
