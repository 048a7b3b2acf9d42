"""What every RL algorithm shares: the step result, the rollout batches a loss reads, and
the policy-gradient step of text and grounding rows.

An algorithm (``conf/rl/algo``) is a small object holding its hyper-parameters. Its
``text(ctx, prompts)`` / ``ground(ctx, prompts)`` run the rollouts it needs through the
:class:`~scalar.rl.sampling.Sampler` of ``ctx`` and return a :class:`Step`; its ``loss``
maps a rollout batch to named terms (``loss`` and detached statistics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from scalar.rl.advantages import grpo_loss
from scalar.rl.sampling import GroundRollout, RolloutContext, Sampling, TextRollout


@dataclass
class Step:
    """One kind of rows' share of a training step."""

    loss: Tensor  # the objective (with gradients)
    stats: dict[str, Tensor]  # detached statistics, logged as train/<name>
    rep: dict  # the repeated prompt batch (sample table)
    gen: dict  # texts (and the advantage of each sample, for the table)
    total: np.ndarray  # [B*G] reward of each sample
    log: dict[str, float]  # reward terms' means, logged as train/reward/<name>


@dataclass
class PolicyBatch:
    """A scored rollout batch re-scored under the policy: what a policy-gradient loss reads.

    Token rows ``[N, L]`` (``N = B*G``) with a ``mask``; a grounding row is one action
    (``L = 1``).
    """

    logp: Tensor  # [N, L] log-probabilities of the taken tokens / actions (with gradients)
    mask: Tensor  # [N, L] 1 on taken tokens
    rewards: Tensor  # [B, G] reward of each sample
    old_logp: Tensor | None = None  # [N, L] at sampling time (None: on-policy, logp itself)
    ref_logp: Tensor | None = None  # [N, L] under the reference (per-token k3 KL)
    kl: Tensor | None = None  # an exact KL to the reference (grounding rows), added instead
    baseline: Tensor | None = None  # [B] reward of each prompt's greedy answer (SCST)


@dataclass
class PairBatch:
    """Sequence log-probabilities ``[P]`` of preference pairs (DPO)."""

    chosen: Tensor  # policy, chosen sample (with gradients)
    rejected: Tensor  # policy, rejected sample (with gradients)
    ref_chosen: Tensor  # reference, chosen sample
    ref_rejected: Tensor  # reference, rejected sample


def describe_boxes(boxes: Tensor, contexts: list) -> list[str]:
    """Table texts of sampled boxes (``[x0, y0, x1, y1] -> description`` when described)."""
    texts = contexts[0][1].get("descriptions") if contexts else None
    texts = [f" -> {d}" for d in texts] if texts else [""] * len(boxes)
    return [f"{[round(v, 3) for v in b]}{d}" for b, d in zip(boxes.tolist(), texts)]


class Algorithm:
    """Base of the RL algorithms: ``min_group`` samples per prompt at least."""

    name: ClassVar[str] = ""
    min_group: ClassVar[int] = 1

    def check(self, sampling: Sampling) -> None:
        """A clear error when the sampling settings do not suit the algorithm."""
        if int(sampling.group_size) < self.min_group:
            raise ValueError(
                f"rl.sampling.group_size must be >= {self.min_group} for {self.name}, "
                f"got {sampling.group_size}"
            )

    def config(self) -> dict[str, Any]:
        """The algorithm's name and hyper-parameters as plain values."""
        return {"name": self.name, **asdict(self)}

    def text(self, ctx: RolloutContext, prompts: dict) -> Step | None:
        raise NotImplementedError

    def ground_loss(self, ctx: RolloutContext, prompts: dict, ro: GroundRollout):
        """``(loss, stats, advantage [B, G] or [B*G])`` of a grounding rollout."""
        raise NotImplementedError

    def ground(self, ctx: RolloutContext, prompts: dict) -> Step | None:
        """One update of ``ground`` rows: G boxes sampled per query, scored, and the
        algorithm's loss on the actions' log-probabilities."""
        ro = ctx.sampler.ground(ctx.policy, ctx.reference, prompts)
        if ro is None:
            return None
        loss, stats, adv = self.ground_loss(ctx, prompts, ro)
        stats.update(kl=ro.kl.detach(), advantage_abs=adv.abs().mean())
        gen = {"texts": describe_boxes(ro.boxes, ro.contexts),
               "advantage": adv.reshape(-1).detach().cpu()}  # fmt: skip
        return Step(loss, stats, ro.rep, gen, ro.total, ro.log)


class PolicyGradient(Algorithm):
    """Clipped-ratio policy gradient with a KL to the reference (SCST and GRPO): the
    subclasses choose the advantages and the ratio's denominator."""

    kl_beta: float
    clip_eps: float
    mu: int = 1  # optimizer updates per rollout batch (text rows)
    entropy_coef: float = 0.0  # weight of -H (mean next-token entropy) in the loss
    varentropy_coef: float = 0.0  # weight of V (varentropy) in the loss
    box_actions: bool = False  # a text row's first <box> is a sampled action of the decoder

    def advantages(self, batch: PolicyBatch) -> Tensor:
        """``[B, G]`` advantages of the samples."""
        raise NotImplementedError

    def baseline(self, ctx: RolloutContext, prompts: dict, ro: TextRollout | GroundRollout):
        """``(rewards [B] of the greedy answers, mean)`` where the algorithm needs them."""
        return None, None

    def loss(self, batch: PolicyBatch) -> dict[str, Tensor]:
        """``-mean_rows mean_tokens [min(rho A, clip(rho) A) - kl_beta KL]`` and statistics
        (``kl``, ``clip_frac``, ``ratio``, ``advantage_abs``)."""
        adv = self.advantages(batch)
        old = batch.old_logp if batch.old_logp is not None else batch.logp.detach()
        loss, stats = grpo_loss(batch.logp, old, batch.ref_logp, adv.reshape(-1), batch.mask,
                                self.clip_eps, self.kl_beta)  # fmt: skip
        if batch.kl is not None:
            loss = loss + self.kl_beta * batch.kl
            stats["kl"] = batch.kl.detach()
        stats["advantage_abs"] = adv.abs().mean()
        return {"loss": loss, **stats}

    def text(self, ctx: RolloutContext, prompts: dict) -> Step | None:
        """One update of text rows (:mod:`scalar.rl.algos.text_step`): a fresh rollout, or
        the kept one while it has updates left (``mu > 1``)."""
        from scalar.rl.algos import text_step

        kept = getattr(self, "_kept", None)
        if kept is None or kept.left <= 0:
            kept = text_step.rollout(self, ctx, prompts)
            if kept is None:
                return None
        self._kept = kept if kept.left > 1 else None
        return text_step.update(self, ctx, kept)

    def sampled_logp(self, ro: TextRollout, new: Tensor) -> Tensor | None:
        """The denominator of the ratio: ``None`` for on-policy (the new log-probs)."""
        return None

    def ground_loss(self, ctx: RolloutContext, prompts: dict, ro: GroundRollout):
        base, mean = self.baseline(ctx, prompts, ro)
        if mean is not None:
            ro.log["greedy"] = mean
        batch = PolicyBatch(ro.logp, torch.ones_like(ro.logp), ro.rewards, kl=ro.kl,
                            baseline=base)  # fmt: skip
        terms = self.loss(batch)
        return terms.pop("loss"), terms, self.advantages(batch)
