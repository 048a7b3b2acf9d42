"""The consistency pipeline on a hand-built case (generation replaced by fixed outputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torchvision.ops import box_iou

from scalar.data.collate import Collator
from scalar.data.scene import ImageInfo, Scene
from scalar.rl.consistency_rollout import ConsistencyRollout
from scalar.rl.rollout import collate_prompts, repeat_rows
from scalar.rl.scoring import score_rows
from tests.conftest import CORPUS, compose_train

R, OTHER = (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)
GROUND = {  # description -> where the (fake) model grounds it, [0, 1]
    "red circle": R,
    "blue square": OTHER,
    "thing": (0.2, 0.2, 0.9, 0.9),  # overlaps R but fits the other proposal better
    "the red circle": R,
}
SAMPLED = {  # role/kind -> the G = 3 sampled completions of that row
    "describe": ["red circle", "blue square", "thing"],
    "gdg": ["red circle", "nothing known", "blue square"],
    "box": ["circle", "square", "the circle"],
    "point": ["circle", "circle", "a square"],
}


def fake_generate(batch, do_sample=False, **kwargs):
    texts, boxes = [], []
    for j, s in enumerate(batch["samples"]):
        if s.task == "rec":
            box = GROUND.get(s.prompt[len("where is ") : -1].strip())
            texts.append("<box>")
            boxes.append([box] if box else [])
        elif do_sample:
            key = s.meta["role"] if s.task == "caption" else s.meta["prompt_kind"]
            texts.append(SAMPLED[key][j % 3])
            boxes.append([])
        else:
            texts.append("circle" if s.task == "roc" else "red circle")
            boxes.append([])
    return {"texts": texts, "boxes": boxes}


class First:
    def integers(self, n):
        return 0


def iou(a, b) -> float:
    return float(box_iou(torch.tensor([a]), torch.tensor([b]))[0, 0])


def test_consistency_rewards_of_a_hand_built_case(tiny_corpus: Path, monkeypatch):
    cfg = compose_train(["model=tiny", "stage=rl", "reward=consistency",
                         f"paths.data_dir={tiny_corpus}", "paths.output_dir=/tmp/unused", *CORPUS])  # fmt: skip
    model = instantiate(cfg.model).eval()
    monkeypatch.setattr(model, "generate", fake_generate)
    collator = Collator(model.tokenizer, model.region_tokens)
    rollout = ConsistencyRollout(collator, ("describe", "format", "gdg"), kinds=("box", "point"))
    rollout.rng = First()  # the first proposal is R
    info = ImageInfo("img", "unused.png", 100, 100)
    item = {"scene": Scene(info), "image": torch.zeros(3, 64, 64), "size": (100, 100),
            "proposals": [(0, 0, 50, 50), (50, 50, 100, 100)], "masks": [None, None],
            "expressions": ["the red circle"]}  # fmt: skip
    samples, images = rollout.prompts(model, [item])
    roles = [s.meta["role"] for s in samples]
    assert roles == ["describe", "format", "format", "gdg"]
    assert samples[3].meta["first"] == R  # the expression was grounded first
    assert samples[1].meta["anchors"] == {"point": "circle"}  # greedy answers of the other kind
    batch = repeat_rows(collate_prompts(collator, samples, images), 3)
    gen = fake_generate(batch, do_sample=True)
    contexts = rollout.contexts(model, batch, gen)
    rewards = instantiate(cfg.reward.terms)
    from scalar.rewards.combine import Rewards

    total, log, terms, applies = score_rows(Rewards(rewards), contexts, len(gen["texts"]))
    thing = GROUND["thing"]
    base = iou(thing, R)
    penalised = max(0.0, base - 0.5 * max(0.0, iou(thing, OTHER) - base))
    assert 0 < penalised < base
    np.testing.assert_allclose(terms["describe_ground"][0:3], [1.0, 0.0, penalised], atol=1e-6)
    assert applies["describe_ground"].tolist() == [True] * 3 + [False] * 9
    # format rows: the box samples vs the point anchor "circle", the point samples vs "circle"
    np.testing.assert_allclose(terms["format_agreement"][3:9], [1, 0, 1, 1, 1, 0])
    # ground-describe-ground: IoU(B1 = R, grounding of each description); none -> 0
    np.testing.assert_allclose(terms["ground_describe_ground"][9:12], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(terms["localization"][0:3], [1.0, 0.0, base], atol=1e-6)
    # weights 1, 1, 1 (semantic and localization 0): each row's total is its own term
    expected = (
        terms["describe_ground"] + terms["format_agreement"] + terms["ground_describe_ground"]
    )
    np.testing.assert_allclose(total, expected, atol=1e-9)
    assert log["format_agreement"] == pytest.approx(4 / 6)
    assert 0.0 <= log["semantic"] <= 1.0 and applies["semantic"][:3].all()
