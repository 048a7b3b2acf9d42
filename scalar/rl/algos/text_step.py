"""The policy-gradient step of text rows (SCST, GRPO / PPO), with ``mu`` inner updates.

A rollout samples G completions per prompt with the KV cache, optionally samples the box
action of each ``<box>`` answer (:mod:`scalar.rl.policy_pass`), scores them, and stores
what the updates need: tokens, rewards, the greedy baseline (SCST), the sampling-time
log-probabilities (``old``) and the reference's. An algorithm with ``mu > 1`` keeps the
rollout for ``mu`` consecutive training steps (``mu`` optimizer updates on one rollout
batch; the prompts of the steps in between are not used), so that from the second update
on the policy differs from the one that sampled and the clipped ratio acts. The entropy
regulariser of the SCST seed, ``varentropy_coef * V - entropy_coef * H`` (mean over the
completion tokens), is added to the loss when either coefficient is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from scalar.rl.algos.base import PolicyBatch, Step
from scalar.rl.policy_pass import (
    BoxActions,
    box_action_logp,
    place_sampled_boxes,
    policy_pass,
    sample_box_actions,
    with_action_column,
)
from scalar.rl.sampling import RolloutContext


@dataclass
class Kept:
    """A scored rollout batch, kept for the algorithm's ``mu`` updates."""

    ro: Any  # the TextRollout
    old: Tensor | None  # [N, L(+1)] sampling-time log-probs (None: on-policy)
    ref: Tensor  # [N, L(+1)] the reference's
    baseline: Tensor | None  # [B] greedy rewards (SCST)
    actions: BoxActions | None
    left: int  # updates still to make with it


def _box_settings(ctx: RolloutContext) -> tuple[tuple[float, float], float]:
    s = ctx.sampler.sampling
    return s.ground_geometry_std, float(s.ground_temperature)


def _pass(algo, ctx, model, ro, actions, entropy: bool = False) -> dict[str, Any]:
    """A policy pass of the rollout's tokens with the box-action column appended."""
    gen, sampling = ro.gen, ctx.sampler.sampling
    pas = policy_pass(model, ro.rep, gen["tokens"], gen["lengths"], sampling.temperature,
                      entropy)  # fmt: skip
    col = None
    if actions is not None:
        col = box_action_logp(pas, actions, *_box_settings(ctx))
    pas["logp"], pas["mask"] = with_action_column(pas["logp"], pas["mask"], actions, col)
    pas["action_logp"] = col
    return pas


def rollout(algo, ctx: RolloutContext, prompts: dict) -> Kept | None:
    """Sample, (box actions,) score, and store the old and the reference log-probs."""
    sampler, device = ctx.sampler, prompts["prompt_input_ids"].device
    with torch.no_grad():
        ro = sampler.text(ctx.policy, prompts)
        if ro is None:
            return None
        actions = None
        if algo.box_actions:
            gen = ro.gen
            pas = policy_pass(ctx.policy, ro.rep, gen["tokens"], gen["lengths"],
                              sampler.sampling.temperature)  # fmt: skip
            actions = sample_box_actions(pas, len(gen["tokens"]), *_box_settings(ctx))
            if actions is not None:  # the sampled boxes are what is scored
                place_sampled_boxes(gen, actions)
                total, logd, terms, applies = sampler.score(ctx.policy, ro.rep, gen)
                ro.total, ro.log, ro.terms, ro.applies = total, logd, terms, applies
                ro.rewards = torch.as_tensor(total, dtype=torch.float32,
                                             device=device).view(-1, sampler.group_size)  # fmt: skip
                ro.log["box_actions"] = float(len(actions.rows)) / len(gen["tokens"])
        base, mean = algo.baseline(ctx, prompts, ro)
        if mean is not None:
            ro.log["greedy"] = mean
        ref = _pass(algo, ctx, ctx.reference, ro, actions)["logp"]
        old = algo.sampled_logp(ro, ref)
        if old is not None and actions is not None:
            now = _pass(algo, ctx, ctx.policy, ro, actions)
            old = torch.cat([old, old.new_zeros(len(old), 1)], 1)
            old[actions.rows, -1] = now["action_logp"].to(old.dtype)
    return Kept(ro, old, ref, base, actions, max(1, int(getattr(algo, "mu", 1))))


def update(algo, ctx: RolloutContext, kept: Kept) -> Step:
    """One optimizer update's loss on a kept rollout (``kept.left`` is counted down)."""
    ro = kept.ro
    reg = bool(algo.entropy_coef or algo.varentropy_coef)
    pas = _pass(algo, ctx, ctx.policy, ro, kept.actions, entropy=reg)
    batch = PolicyBatch(pas["logp"], pas["mask"], ro.rewards, old_logp=kept.old,
                        ref_logp=kept.ref, baseline=kept.baseline)  # fmt: skip
    terms = algo.loss(batch)
    loss = terms.pop("loss")
    if reg:
        ent, var = pas["entropy"].mean(), pas["varentropy"].mean()
        loss = loss + float(algo.varentropy_coef) * var - float(algo.entropy_coef) * ent
        terms.update(entropy=ent.detach(), varentropy=var.detach())
    adv = algo.advantages(batch)
    terms["completion_len"] = ro.gen["lengths"].float().mean()
    terms["inner_update"] = torch.tensor(float(int(getattr(algo, "mu", 1)) - kept.left))
    ro.gen["advantage"] = adv.reshape(-1).detach().cpu()
    ro.gen["terms"], ro.gen["applies"] = ro.terms, ro.applies
    kept.left -= 1
    return Step(loss, terms, ro.rep, ro.gen, ro.total, dict(ro.log))
