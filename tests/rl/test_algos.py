"""Each RL algorithm's loss against a hand-worked example (values and gradients)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scalar.rl.algos import DPO, GRPO, SCST, PairBatch, PolicyBatch
from scalar.rl.sampling import Sampling


def test_scst_is_reinforce_with_the_greedy_reward_as_baseline():
    # B = 1 prompt, G = 2 samples; row 0 has two tokens, row 1 one (its second is padding)
    logp = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    batch = PolicyBatch(logp, mask, rewards=torch.tensor([[1.0, 0.0]]),
                        ref_logp=logp.detach().clone(), baseline=torch.tensor([0.25]))  # fmt: skip
    terms = SCST(kl_beta=0.5).loss(batch)
    # advantages r - b = (0.75, -0.25); the ratio is 1, so the value is -mean_rows(A)
    assert terms["loss"].item() == pytest.approx(-(0.75 - 0.25) / 2)
    assert terms["advantage_abs"].item() == pytest.approx(0.5)
    assert terms["kl"].item() == 0.0 and terms["clip_frac"].item() == 0.0
    terms["loss"].backward()
    # gradient of mean_rows mean_tokens[(r - b) * -log p]: -A_i / n_i / N per token
    want = torch.tensor([[-0.75 / 2 / 2, -0.75 / 2 / 2], [0.25 / 1 / 2, 0.0]])
    torch.testing.assert_close(logp.grad, want)


def test_scst_kl_term_is_k3_to_the_reference():
    logp = torch.tensor([[-1.0]], requires_grad=True)
    ref = torch.tensor([[-1.0 + math.log(2.0)]])  # d = ref - logp = ln 2
    batch = PolicyBatch(logp, torch.ones(1, 1), torch.tensor([[0.5]]), ref_logp=ref,
                        baseline=torch.tensor([0.5]))  # fmt: skip
    terms = SCST(kl_beta=0.5).loss(batch)
    k3 = 2.0 - math.log(2.0) - 1.0  # exp(d) - d - 1
    assert terms["kl"].item() == pytest.approx(k3)
    assert terms["loss"].item() == pytest.approx(0.5 * k3)  # advantage 0


def test_scst_needs_the_greedy_baseline():
    batch = PolicyBatch(torch.zeros(2, 1), torch.ones(2, 1), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="greedy"):
        SCST().loss(batch)


def test_grpo_normalises_advantages_per_group_and_clips_the_ratio():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mean, std = 2.5, math.sqrt((1.5**2 + 0.5**2 + 0.5**2 + 1.5**2) / 4)  # population std
    adv = [(r - mean) / (std + 1e-6) for r in (1.0, 2.0, 3.0, 4.0)]
    ratios = [1.0, 1.0, 1.5, 0.5]  # rows 2 and 3: outside 1 +- 0.2
    old = torch.full((4, 1), -1.0)
    new = (old + torch.tensor(ratios).log()[:, None]).requires_grad_(True)
    batch = PolicyBatch(new, torch.ones(4, 1), rewards, old_logp=old)
    terms = GRPO(kl_beta=0.0, clip_eps=0.2).loss(batch)
    # min(rho A, clip(rho) A): row 2 takes 1.2 A (clipped), row 3 takes 0.5 A (unclipped)
    surrogate = [adv[0], adv[1], 1.2 * adv[2], 0.5 * adv[3]]
    assert terms["loss"].item() == pytest.approx(-sum(surrogate) / 4, rel=1e-5)
    assert terms["clip_frac"].item() == pytest.approx(0.5)
    assert terms["ratio"].item() == pytest.approx(sum(ratios) / 4)
    assert terms["advantage_abs"].item() == pytest.approx(sum(abs(a) for a in adv) / 4)
    terms["loss"].backward()
    # d/dlogp of -rho A / 4 is -rho A / 4 where unclipped, 0 where the clip binds
    want = [-adv[0] / 4, -adv[1] / 4, 0.0, -0.5 * adv[3] / 4]
    torch.testing.assert_close(new.grad[:, 0], torch.tensor(want), rtol=1e-5, atol=1e-7)


def test_grpo_without_std_and_with_an_exact_kl():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    algo = GRPO(kl_beta=0.5, adv_std=False)
    logp = torch.zeros(8, 1, requires_grad=True)
    batch = PolicyBatch(logp, torch.ones(8, 1), rewards, kl=torch.tensor(0.2))
    want = torch.tensor([[-1.5, -0.5, 0.5, 1.5], [0.0, 0.0, 0.0, 0.0]])  # r - mean only
    torch.testing.assert_close(algo.advantages(batch), want)
    terms = algo.loss(batch)  # on-policy (ratio 1): -mean(A) + kl_beta * KL
    assert terms["loss"].item() == pytest.approx(0.0 + 0.5 * 0.2)
    assert terms["kl"].item() == pytest.approx(0.2)
    equal = PolicyBatch(logp, torch.ones(8, 1), rewards)
    assert GRPO().advantages(equal)[1].abs().max().item() == 0.0  # equal rewards: no signal


def test_dpo_loss_is_minus_logsigmoid_of_beta_times_the_margin():
    chosen = torch.tensor([-1.0, -2.0], requires_grad=True)
    rejected = torch.tensor([-3.0, -1.0], requires_grad=True)
    ref_c, ref_r = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    terms = DPO(beta=0.5).loss(PairBatch(chosen, rejected, ref_c, ref_r))
    # margins: (-1+2) - (-3+2) = 2 and (-2+2) - (-1+2) = -1
    want = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))) / 2
    assert terms["loss"].item() == pytest.approx(want)
    assert terms["margin"].item() == pytest.approx(0.5)
    assert terms["accuracy"].item() == pytest.approx(0.5)
    terms["loss"].backward()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    grad = [-0.5 * sig(-0.5 * 2) / 2, -0.5 * sig(-0.5 * -1) / 2]  # -beta sigmoid(-beta m) / P
    torch.testing.assert_close(chosen.grad, torch.tensor(grad))
    torch.testing.assert_close(rejected.grad, -torch.tensor(grad))


def test_dpo_ranks_by_its_score_terms_where_they_apply():
    terms = {"semantic": np.array([0.2, 0.9, 0.0]), "localization": np.array([0.5, 0.0, 0.0])}
    applies = {"semantic": np.array([True, True, False]),
               "localization": np.array([True, False, False])}  # fmt: skip
    total = np.array([7.0, 8.0, 3.0])
    # row 0: 0.2 + 0.5; row 1: 0.9 (localization does not apply); row 2: none -> total
    np.testing.assert_allclose(DPO().rank(terms, applies, total), [0.7, 0.9, 3.0])
    np.testing.assert_allclose(DPO(score_terms=["missing"]).rank(terms, applies, total), total)


def test_group_size_is_checked_per_algorithm():
    SCST().check(Sampling(group_size=1))
    for algo in (GRPO(), DPO()):
        with pytest.raises(ValueError, match=f"group_size must be >= 2 for {algo.name}"):
            algo.check(Sampling(group_size=1))
    assert GRPO(kl_beta=0.1).config() == {"name": "grpo", "kl_beta": 0.1, "clip_eps": 0.2,
                                          "adv_eps": 1e-6, "adv_std": True, "mu": 1,
                                          "entropy_coef": 0.0, "varentropy_coef": 0.0,
                                          "box_actions": False}  # fmt: skip


def test_object_refinement_cuts_before_the_first_object_name():
    from scalar.rl.algos.dpo import object_cut

    words = ["a", "big", "red", "cir", "cle", "left", "of", "a", "star"]
    decode = lambda ids: " ".join(words[i] for i in ids).replace("cir cle", "circle")  # noqa: E731
    ids = list(range(len(words)))
    # "circle" spans tokens 3-4: the kept prefix is "a big red", the object phrase is resampled
    assert object_cut(decode, ids, ["circle", "star"], fallback=99) == 3
    assert object_cut(decode, ids, ["star"], fallback=99) == 8
    assert object_cut(decode, ids, ["cross"], fallback=5) == 5  # names none: the fallback
    with pytest.raises(ValueError, match="refine must be prefix or objects"):
        DPO(refine="words")
