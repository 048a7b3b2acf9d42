"""Weighted combination, running normalisation and config-built reward specs."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from scalar.rewards import (
    Rewards,
    RewardSpec,
    RunningNorm,
    combine_rewards,
    iou_reward,
    length_reward,
)


def test_combine_rewards_hand_worked():
    total, log = combine_rewards({"a": [1.0, 2.0], "b": np.array([0.0, 1.0])}, {"a": 1, "b": 0.5})
    np.testing.assert_allclose(total, [1.0, 2.5])
    assert log == {"a": 1.5, "b": 0.5, "total": 1.75}
    total, _ = combine_rewards({"a": torch.tensor([1.0, 2.0]), "b": [0.0, 1.0]}, {"a": 2, "b": 1})
    assert isinstance(total, torch.Tensor) and total.tolist() == [2.0, 5.0]


def test_combine_rewards_rejects_mismatches():
    with pytest.raises(KeyError, match="weights"):
        combine_rewards({"a": [1.0]}, {"a": 1.0, "typo": 1.0})
    with pytest.raises(ValueError, match="batch size"):
        combine_rewards({"a": [1.0], "b": [1.0, 2.0]}, {"a": 1.0, "b": 1.0})


def test_running_norm_matches_numpy_over_batches_and_resumes():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3, 2, size=k) for k in (5, 1, 17, 8)]
    norm = RunningNorm()
    for b in batches:
        norm.update(b)
    seen = np.concatenate(batches)
    assert norm.count == len(seen)
    assert norm.mean == pytest.approx(seen.mean())
    assert norm.std == pytest.approx(seen.std())
    x = np.array([0.0, 3.0, 6.0])
    np.testing.assert_allclose(norm.normalize(x), (x - seen.mean()) / seen.std(), rtol=1e-7)
    resumed = RunningNorm()
    resumed.load_state_dict(norm.state_dict())
    np.testing.assert_allclose(resumed(x), norm(x))  # both update with x, then normalise
    small = RunningNorm()
    np.testing.assert_allclose(small([1.0, 2.0, 3.0]), [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    clipped = RunningNorm(clip=1.0)
    assert clipped([0.0, 0.0, 0.0, 10.0]).max() == 1.0


def test_reward_spec_reads_context_by_name_mapping_and_partial():
    context = {
        "pred_boxes": [(0, 0, 2, 2), None],
        "gt_boxes": [(0, 0, 2, 1), (0, 0, 1, 1)],
        "completions": ["one two three", "one"],
        "target_len": 99,  # ignored: the partial binds target_len
    }
    iou = RewardSpec(functools.partial(iou_reward), name="iou")
    np.testing.assert_allclose(iou(context), [0.5, 0.0])
    length = RewardSpec(
        functools.partial(length_reward, target_len=3, tolerance=0),
        inputs={"texts": "completions"},
    )
    np.testing.assert_allclose(length(context), [1.0, 1 / 3])
    with pytest.raises(KeyError, match="needs 'gt_boxes'"):
        iou({"pred_boxes": context["pred_boxes"]})
    with pytest.raises(KeyError, match="unknown parameters"):
        RewardSpec(iou_reward, inputs={"nope": "x"})(context)


def test_rewards_from_hydra_config_with_norm_state():
    cfg = OmegaConf.create(
        {
            "iou": {
                "_target_": "scalar.rewards.RewardSpec",
                "fn": {"_target_": "scalar.rewards.functions.iou_reward", "_partial_": True},
                "weight": 2.0,
            },
            "length": {
                "_target_": "scalar.rewards.RewardSpec",
                "fn": {
                    "_target_": "scalar.rewards.functions.length_reward",
                    "_partial_": True,
                    "target_len": 2,
                },
                "weight": 1.0,
                "inputs": {"texts": "completions"},
                "normalize": True,
            },
        }
    )
    rewards = Rewards(instantiate(cfg))
    context = {
        "pred_boxes": [(0, 0, 2, 2), (0, 0, 1, 1)],
        "gt_boxes": [(0, 0, 2, 1), (0, 0, 1, 1)],
        "completions": ["a b", "a b c"],  # length rewards 1.0 and 0.5 -> normalised +1, -1
    }
    total, log, terms = rewards(context)
    np.testing.assert_allclose(terms["iou"], [0.5, 1.0])
    np.testing.assert_allclose(terms["length"], [1.0, 0.5])
    np.testing.assert_allclose(total, [2 * 0.5 + 1.0, 2 * 1.0 - 1.0], rtol=1e-6)
    assert log["length"] == 0.75 and log["length/norm"] == pytest.approx(0.0)
    state = rewards.state_dict()
    again = Rewards(instantiate(cfg))
    again.load_state_dict(state)
    assert again.norms["length"].state_dict() == rewards.norms["length"].state_dict()
    with pytest.raises(KeyError, match="no saved statistics"):
        again.load_state_dict({})
