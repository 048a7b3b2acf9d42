"""LR schedules and command-line checks."""

from __future__ import annotations

import math

import pytest

from scalar.train.cli import check_overrides
from scalar.train.schedule import warmup_cosine_factor
from tests.conftest import CONF


def test_warmup_cosine_factor_hand_values():
    assert warmup_cosine_factor(0, 4, 104, 0.1) == 0.25
    assert warmup_cosine_factor(3, 4, 104, 0.1) == 1.0
    assert warmup_cosine_factor(4, 4, 104, 0.1) == 1.0
    assert warmup_cosine_factor(54, 4, 104, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway
    assert warmup_cosine_factor(104, 4, 104, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(500, 4, 104, 0.1) == pytest.approx(0.1)  # stays at the floor
    assert warmup_cosine_factor(500, 4, math.inf, 0.1) == 1.0  # time-limited runs: constant


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["model=nope"],
            "unknown model 'nope'; valid names: hf_local, hf_tiny, opt_6_7b, qwen2_7b, tiny, vicuna7b",
        ),
        (["-m", "loss=align,nada"], "unknown loss 'nada'"),
        (["trainer=gpu", "optim.lrr=1"], "error: Could not override 'optim.lrr'"),
        (["seed=[1"], "error: bad override"),
    ],
)
def test_check_overrides_reports_one_line(args, expected):
    message = check_overrides(args, CONF)
    assert message is not None and expected in message and "\n" not in message


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-m", "optim.lr=1e-3,2e-3", "loss=align,infonce"],
        ["optim.lr=interval(1e-4,1e-3)"],
        ["experiment=ablation_contrastive", "trainer=ddp", "+foo=1"],
        ["hparams_search=optuna", "--config-name", "train"],
    ],
)
def test_check_overrides_accepts_good_command_lines(args):
    assert check_overrides(args, CONF) is None
