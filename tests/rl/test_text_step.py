"""Text-row policy gradient: mu > 1 updates on one rollout (the clip acts), box actions
(a box reward reaches the spatial decoder), the entropy regulariser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from scalar.data.collate import Collator
from scalar.data.scene import ImageInfo
from scalar.rewards.entropy import entropy_regulariser
from scalar.rewards.functions import iou_reward
from scalar.rl.advantages import grpo_advantages
from scalar.rl.algos import GRPO, SCST, text_step
from scalar.rl.policy_pass import policy_pass
from scalar.rl.rollout import collate_prompts, frozen_copy, rec_sample, repeat_rows
from scalar.rl.sampling import RolloutContext, Sampling, TextRollout
from tests.conftest import CORPUS, compose_train

TARGET = (0.1, 0.1, 0.5, 0.5)


class FixedSampler:
    """A sampler whose 'samples' are given token rows; the reward is the IoU of each row's
    first box with ``TARGET`` (0 without a box) plus 0.1 per token (so that rows differ)."""

    def __init__(self, sampling: Sampling, rows: list[list[int]]):
        self.sampling, self.rows, self.calls = sampling, rows, 0

    @property
    def group_size(self) -> int:
        return int(self.sampling.group_size)

    def score(self, model, rep, gen, update=True):
        boxes = [b[0] if b else None for b in gen["boxes"]]
        iou = iou_reward(boxes, [TARGET] * len(boxes))
        total = iou + 0.1 * gen["lengths"].numpy()
        ones = np.ones(len(total), dtype=bool)
        return total, {"iou": float(iou.mean()), "coverage": 1.0}, {"iou": iou}, {"iou": ones}

    def text(self, model, prompts):
        self.calls += 1
        rep = repeat_rows(prompts, self.group_size)
        width = max(len(r) for r in self.rows)
        tokens = torch.tensor([r + [model.pad_id] * (width - len(r)) for r in self.rows])
        lengths = torch.tensor([len(r) for r in self.rows])
        lp = policy_pass(model, rep, tokens, lengths, self.sampling.temperature)["logp"]
        gen = {"tokens": tokens, "lengths": lengths, "logprobs": lp, "texts": ["t"] * len(tokens)}
        gen["boxes"] = [[(0.2, 0.2, 0.6, 0.6)] if model.box_id in r else [] for r in self.rows]
        total, log, terms, applies = self.score(model, rep, gen)
        rewards = torch.as_tensor(total, dtype=torch.float32).view(-1, self.group_size)
        return TextRollout(rep, gen, total, log, terms, applies, rewards)


@pytest.fixture(scope="module")
def tiny(tiny_corpus: Path):
    cfg = compose_train(["model=tiny", f"paths.data_dir={tiny_corpus}", *CORPUS])
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    collator = Collator(model.tokenizer, model.region_tokens)
    info = ImageInfo("img", "unused.png", 64, 64)
    image = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(1))
    prompts = collate_prompts(collator, [rec_sample(info, "the red circle")], [image])
    word = model.tokenizer("red", add_special_tokens=False).input_ids[0]
    return model, prompts, word


def _ctx(model, rows, group):
    sampler = FixedSampler(Sampling(group_size=group, ground_temperature=1.0), rows)
    return RolloutContext(model, frozen_copy(model), sampler), sampler


def test_mu_updates_reuse_one_rollout_and_the_clip_changes_the_gradient(tiny):
    model, prompts, w = tiny
    rows = [[w, model.eos_id], [w, w, model.eos_id], [w, w, w, model.eos_id]]
    ctx, sampler = _ctx(model, rows, 3)
    algo = GRPO(kl_beta=0.0, clip_eps=0.05, mu=2)
    kept = text_step.rollout(GRPO(kl_beta=0.0, mu=1), ctx, prompts)  # the same rollout, kept
    first = algo.text(ctx, prompts)
    assert first.stats["clip_frac"].item() == 0.0  # the sampling policy itself: ratio 1
    torch.testing.assert_close(first.stats["ratio"], torch.tensor(1.0))
    with torch.no_grad():  # an update that moves the token head a lot
        model.causal_lm.get_output_embeddings().weight.add_(
            0.5 * torch.randn_like(model.causal_lm.get_output_embeddings().weight)
        )
    model.zero_grad()
    second = algo.text(ctx, prompts)
    assert sampler.calls == 2  # (one for `kept`) the second update reused the rollout
    assert second.stats["inner_update"].item() == 1.0
    assert second.stats["clip_frac"].item() > 0
    second.loss.backward()
    clipped_grad = model.causal_lm.get_output_embeddings().weight.grad.clone()
    # independent: the same surrogate without a clip, and with clipped tokens removed
    pas = policy_pass(model, kept.ro.rep, kept.ro.gen["tokens"], kept.ro.gen["lengths"], 1.0)
    ratio = torch.exp(pas["logp"] - kept.old)
    adv = grpo_advantages(kept.ro.rewards).reshape(-1, 1)
    inside = ((ratio - 1).abs() <= 0.05) | ((ratio > 1) & (adv < 0)) | ((ratio < 1) & (adv > 0))
    m = pas["mask"].float()
    per_row = lambda x: ((x * m).sum(1) / m.sum(1)).mean()  # noqa: E731
    model.zero_grad()
    (-per_row(ratio * adv * inside.detach())).backward(retain_graph=True)
    torch.testing.assert_close(
        clipped_grad, model.causal_lm.get_output_embeddings().weight.grad, rtol=1e-4, atol=1e-6
    )
    model.zero_grad()
    (-per_row(ratio * adv)).backward()
    assert not torch.allclose(
        clipped_grad, model.causal_lm.get_output_embeddings().weight.grad, atol=1e-6
    )
    assert bool((~inside & m.bool()).any())


def test_a_box_reward_reaches_the_spatial_decoder(tiny):
    model, prompts, w = tiny
    rows = [[w, model.box_id, model.eos_id]] * 4
    torch.manual_seed(3)
    for actions, moved in ((True, True), (False, False)):
        ctx, _ = _ctx(model, rows, 4)
        step = SCST(kl_beta=0.0, box_actions=actions).text(ctx, prompts)
        model.zero_grad()
        step.loss.backward()
        grads = [p.grad for p in model.spatial.parameters() if p.requires_grad]
        norm = sum(float(g.abs().sum()) for g in grads if g is not None)
        assert (norm > 0) == moved
    # the sampled boxes were scored: rewards differ from the fixed greedy box's
    assert len({b[0] for b in step.gen["boxes"]}) == 1
    ctx, _ = _ctx(model, rows, 4)
    step = SCST(kl_beta=0.0, box_actions=True).text(ctx, prompts)
    assert len({b[0] for b in step.gen["boxes"]}) == 4
    assert step.log["box_actions"] == 1.0


def test_the_entropy_regulariser_is_in_the_loss(tiny):
    model, prompts, w = tiny
    rows = [[w, model.eos_id], [w, w, model.eos_id]]
    ctx, _ = _ctx(model, rows, 2)
    plain = GRPO(kl_beta=0.0).text(ctx, prompts)
    reg = GRPO(kl_beta=0.0, entropy_coef=0.3, varentropy_coef=0.2).text(ctx, prompts)
    pas = policy_pass(model, plain.rep, plain.gen["tokens"], plain.gen["lengths"], 1.0)
    p = plain.rep["prompt_input_ids"].shape[1]
    logits = pas["out"]["logits"][:, p - 1 : p - 1 + 3].float()
    ent, var = entropy_regulariser(logits, pas["mask"])
    want = plain.loss + 0.2 * var.mean() - 0.3 * ent.mean()
    torch.testing.assert_close(reg.loss, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reg.stats["entropy"], ent.mean(), rtol=1e-5, atol=1e-6)
