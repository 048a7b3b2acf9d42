"""Advantages and losses against hand-worked numbers."""

from __future__ import annotations

import math

import pytest
import torch

from scalar.rl.advantages import dpo_loss, grpo_advantages, grpo_loss, k3_kl, scst_advantages


def test_scst_advantage_is_sample_minus_greedy_reward():
    adv = scst_advantages(torch.tensor([[1.0, 0.5], [0.2, 0.9]]), torch.tensor([0.5, 1.0]))
    assert torch.allclose(adv, torch.tensor([[0.5, 0.0], [-0.8, -0.1]]))
    with pytest.raises(ValueError):
        scst_advantages(torch.zeros(2, 2), torch.zeros(3))


def test_grpo_advantages_are_group_normalised():
    adv = grpo_advantages(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]), eps=0.0 + 1e-12)
    s = math.sqrt(2 / 3)  # population std of 1, 2, 3
    assert torch.allclose(adv[0], torch.tensor([-1 / s, 0.0, 1 / s]), atol=1e-5)
    assert torch.equal(adv[1], torch.zeros(3))  # equal rewards: no signal


def test_grpo_advantages_without_std_scaling_keep_small_differences_small():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [0.50, 0.51, 0.52]])
    adv = grpo_advantages(rewards, scale=False)
    assert torch.allclose(adv, torch.tensor([[-1.0, 0.0, 1.0], [-0.01, 0.0, 0.01]]), atol=1e-6)
    scaled = grpo_advantages(rewards)
    assert torch.allclose(scaled[1], scaled[0], atol=1e-3)  # std scaling: both unit-sized


def _hand_case(adv: float, beta: float = 0.0):
    new = torch.tensor([[math.log(1.5), math.log(0.9), 7.0]], requires_grad=True)
    old = torch.zeros(1, 3)
    ref = torch.zeros(1, 3)
    mask = torch.tensor([[1, 1, 0]])  # the third token is padding
    loss, stats = grpo_loss(new, old, ref, torch.tensor([adv]), mask, clip_eps=0.2, kl_beta=beta)
    loss.backward()
    return loss.detach(), stats, new.grad


def test_grpo_loss_clips_the_ratio_for_positive_advantages():
    loss, stats, grad = _hand_case(1.0)
    # token 1: ratio 1.5 -> clipped to 1.2 (active); token 2: ratio 0.9 inside the band
    assert float(loss) == pytest.approx(-(1.2 + 0.9) / 2, abs=1e-6)
    assert float(stats["clip_frac"]) == pytest.approx(0.5)
    assert float(grad[0, 0]) == 0.0  # the clipped token gets no gradient
    assert float(grad[0, 1]) == pytest.approx(-0.9 / 2, abs=1e-6)
    assert float(grad[0, 2]) == 0.0  # masked


def test_grpo_loss_keeps_the_unclipped_term_for_negative_advantages():
    loss, _, grad = _hand_case(-1.0)
    # min(-1.5, -1.2) = -1.5: clipping does not bound a bad action's loss from below
    assert float(loss) == pytest.approx((1.5 + 0.9) / 2, abs=1e-6)
    assert float(grad[0, 0]) == pytest.approx(1.5 / 2, abs=1e-6)


def test_grpo_loss_k3_kl_penalty():
    loss, stats, _ = _hand_case(1.0, beta=0.1)
    k1 = 2 / 3 + math.log(1.5) - 1  # exp(d) - d - 1 with d = -log 1.5
    k2 = 1 / 0.9 - math.log(1 / 0.9) - 1
    assert float(stats["kl"]) == pytest.approx((k1 + k2) / 2, abs=1e-6)
    assert float(loss) == pytest.approx(-((1.2 + 0.9) / 2 - 0.1 * (k1 + k2) / 2), abs=1e-6)
    assert float(k3_kl(torch.tensor(0.3), torch.tensor(0.3))) == 0.0


def test_dpo_loss_hand_example():
    loss, stats = dpo_loss(
        torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), 0.5
    )
    # margin = (-1 + 2) - (-3 + 2) = 2; loss = -log sigmoid(0.5 * 2) = log(1 + e^-1)
    assert float(loss) == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)
    assert float(stats["margin"]) == 2.0 and float(stats["accuracy"]) == 1.0
