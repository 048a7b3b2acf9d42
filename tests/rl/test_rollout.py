"""Real sampling, teacher-forced log-probabilities, the frozen reference, proposals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from scalar.data.collate import Collator
from scalar.data.scene import ImageInfo
from scalar.rl.advantages import grpo_loss
from scalar.rl.prompts import component_proposals
from scalar.rl.rollout import (
    caption_sample,
    collate_prompts,
    frozen_copy,
    repeat_rows,
    roc_sample,
    token_logprobs,
)
from tests.conftest import CORPUS, compose_train


@pytest.fixture(scope="module")
def model_and_batch(tiny_corpus: Path):
    from hydra.utils import instantiate

    torch.manual_seed(0)
    cfg = compose_train(["model=tiny", f"paths.data_dir={tiny_corpus}", *CORPUS])
    model = instantiate(cfg.model).eval()
    collator = Collator(model.tokenizer, model.region_tokens)
    info = ImageInfo("a", "unused.png", 128, 96)
    samples = [
        caption_sample(info, (10, 10, 60, 50)),
        roc_sample(info, (30, 20, 90, 80), "point"),
        roc_sample(info, (0, 0, 64, 48), "mask", mask=None),
    ]
    images = [torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    return model, collate_prompts(collator, samples, images)


def test_samples_are_real_sampling_and_logprobs_match_teacher_forcing(model_and_batch):
    model, batch = model_and_batch
    rep = repeat_rows(batch, 2)
    assert rep["region_batch"].tolist() == [0, 1, 2, 3, 4, 5]  # one prompt per repeated row
    kw = {"max_new_tokens": 6, "temperature": 0.7}
    sample = model.generate(rep, do_sample=True, generator=torch.Generator().manual_seed(1), **kw)
    again = model.generate(rep, do_sample=True, generator=torch.Generator().manual_seed(1), **kw)
    greedy = model.generate(rep, do_sample=False, **kw)
    assert torch.equal(sample["tokens"], again["tokens"])  # a fixed seed reproduces
    assert not torch.equal(sample["tokens"], greedy["tokens"][:, : sample["tokens"].shape[1]])
    # the copies of one prompt decode differently (independent draws)
    assert any(
        not torch.equal(sample["tokens"][2 * b], sample["tokens"][2 * b + 1]) for b in range(3)
    )
    lp, mask = token_logprobs(model, rep, sample["tokens"], sample["lengths"], 0.7)
    assert mask.sum(1).tolist() == sample["lengths"].tolist()
    assert torch.allclose(lp, sample["logprobs"] * mask, atol=1e-4)
    # greedy rows: their log-probs match teacher forcing too
    first = token_logprobs(model, rep, greedy["tokens"], greedy["lengths"], 0.7)[0]
    assert torch.allclose(first, greedy["logprobs"] * (first != 0), atol=1e-4)


def test_kl_to_the_reference_is_zero_before_the_first_update(model_and_batch):
    model, batch = model_and_batch
    ref = frozen_copy(model)
    assert all(not p.requires_grad for p in ref.parameters())
    gen = model.generate(batch, do_sample=True, max_new_tokens=5,
                         generator=torch.Generator().manual_seed(3))  # fmt: skip
    new, mask = token_logprobs(model, batch, gen["tokens"], gen["lengths"])
    with torch.no_grad():
        old = token_logprobs(ref, batch, gen["tokens"], gen["lengths"])[0]
    _, stats = grpo_loss(new, new.detach(), old, torch.ones(3), mask, 0.2, 0.1)
    assert float(stats["kl"]) == 0.0
    with torch.no_grad():
        next(model.llm.parameters()).add_(0.5)
        moved = token_logprobs(model, batch, gen["tokens"], gen["lengths"])[0]
        next(model.llm.parameters()).sub_(0.5)
    _, stats = grpo_loss(moved, moved, old, torch.ones(3), mask, 0.2, 0.1)
    assert float(stats["kl"]) > 0.0


def test_component_proposals_find_isolated_objects_without_labels(tmp_path: Path):
    # the flat world, whose objects are the only pixels unlike the background (on the
    # default textured world they find little: tests/data/synth/test_world.py)
    from scalar.data.synth.build import build_synthetic

    root = tmp_path / "flat"
    build_synthetic(root, workers=1, seed=0, difficulty="flat", n_train=8, n_val=0, n_test=0,
                    n_heldout=0, n_unlabeled=0)  # fmt: skip
    data = json.loads((root / "refcoco" / "synthetic" / "instances.json").read_text())
    boxes: dict[int, list] = {}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], []).append([x, y, x + w, y + h])
    checked = 0
    for image in data["images"][:6]:
        arr = np.asarray(Image.open(root / "images" / image["file_name"]).convert("RGB"))
        props = torch.tensor([b for b, _ in component_proposals(arr)], dtype=torch.float32)
        gt = torch.tensor(boxes[image["id"]], dtype=torch.float32)
        grown = gt + torch.tensor([-2.0, -2.0, 2.0, 2.0])
        touching = (box_iou(grown, grown) > 0).sum(1) > 1
        for k in (~touching).nonzero()[:, 0].tolist():
            assert float(box_iou(gt[k : k + 1], props).max()) >= 0.85
            checked += 1
    assert checked >= 5


def test_take_rows_keeps_rows_pointing_at_their_images():
    from scalar.core.batch import row_image
    from scalar.rl.rollout import repeat_rows, take_rows

    batch = {
        "prompt_input_ids": torch.tensor([[1], [2], [3]]),
        "images": torch.tensor([[10.0], [11.0], [12.0]]),  # U == B: must not be re-indexed
        "image_index": torch.tensor([2, 0, 1]),
        "region_boxes": torch.tensor([[0.5] * 4]),
        "region_batch": torch.tensor([1]),
    }
    out = take_rows(batch, [1, 1, 0])
    assert [row_image(out, r).item() for r in range(3)] == [10.0, 10.0, 12.0]
    assert out["region_batch"].tolist() == [0, 1]
    rep = repeat_rows(batch, 2)
    assert [row_image(rep, r).item() for r in range(6)] == [12.0, 12.0, 10.0, 10.0, 11.0, 11.0]
