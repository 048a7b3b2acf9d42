"""Grounding as an RL action: cell distribution, sampling, boxes and KL."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch.distributions import Categorical, kl_divergence

from scalar.data.collate import Collator
from scalar.data.scene import ImageInfo
from scalar.rl import grounding
from scalar.rl.grounding import (
    categorical_kl,
    cell_logprobs,
    geometry_logprob,
    ground_rows,
    head_noun,
    placed_boxes,
    sample_cells,
    sample_geometry,
)
from scalar.rl.rollout import collate_prompts, rec_sample
from tests.conftest import CORPUS, compose_train


def test_placed_boxes_of_a_hand_worked_grid():
    # 2 x 2 grid: cell centres (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)
    cells = torch.tensor([3, 0])
    offset = torch.tensor([[0.0, 0.0], [0.1, -0.05]])
    size = torch.tensor([[0.5, 0.2], [0.8, 0.4]])
    boxes = placed_boxes(cells, offset, size.log(), (2, 2))
    # second: centre (0.35, 0.2), clipped on the left and top
    expected = torch.tensor([[0.5, 0.65, 1.0, 0.85], [0.0, 0.0, 0.75, 0.4]])
    torch.testing.assert_close(boxes, expected)


def test_geometry_samples_and_log_density():
    offset, log_size = torch.zeros(20000, 2), torch.full((20000, 2), -1.0)
    gen = torch.Generator().manual_seed(0)
    taken = sample_geometry(offset, log_size, (0.5, 0.1), (0.25, 0.125), gen)
    # std of the centre noise: 0.5 cells of (0.25, 0.125); of the log size: 0.1
    torch.testing.assert_close(taken[0].std(0), torch.tensor([0.125, 0.0625]), atol=2e-3, rtol=0)
    torch.testing.assert_close(taken[1].mean(0), torch.tensor([-1.0, -1.0]), atol=3e-3, rtol=0)
    # hand-worked density: offset 0.125 off by one std in x, log size 0.2 off (two stds)
    off, ls = torch.zeros(1, 2), torch.zeros(1, 2)
    taken = (torch.tensor([[0.125, 0.0]]), torch.tensor([[0.2, 0.0]]))
    lp = geometry_logprob(off, ls, taken, (0.5, 0.1), (0.25, 0.125))
    torch.testing.assert_close(lp, torch.tensor([-(1.0 + 4.0) / 2]))
    assert float(geometry_logprob(off, ls, taken, (0.0, 0.0), (0.25, 0.125))[0]) == 0.0


def test_sampled_cells_follow_the_distribution_and_differ_from_the_argmax():
    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.7]])
    logp = probs.clamp_min(1e-12).log()
    gen = torch.Generator().manual_seed(0)
    cells = sample_cells(logp, 20000, gen).view(2, -1)
    freq = torch.stack([torch.bincount(c, minlength=4).float() / c.numel() for c in cells])
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    assert not bool((cells == probs.argmax(1, keepdim=True)).all())  # not the greedy cell
    # row i's samples sit at i*g .. i*g+g-1
    flat = sample_cells(logp, 3, torch.Generator().manual_seed(1))
    assert flat.shape == (6,) and bool((flat[:3] != 3).all())  # row 0 never draws cell 3


def test_categorical_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 9, generator=gen), torch.randn(5, 9, generator=gen)
    la, lb = a.log_softmax(-1), b.log_softmax(-1)
    expected = kl_divergence(Categorical(logits=a), Categorical(logits=b))
    torch.testing.assert_close(categorical_kl(la, lb), expected)
    assert torch.allclose(categorical_kl(la, la), torch.zeros(5), atol=1e-7)


def test_cell_logprobs_are_the_decoder_attention(tiny_corpus: Path):
    cfg = compose_train(["model=tiny", f"paths.data_dir={tiny_corpus}", *CORPUS])
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    collator = Collator(model.tokenizer, model.region_tokens)
    info = ImageInfo("img", "unused.png", 64, 64)
    samples = [rec_sample(info, "the red circle"), rec_sample(info, "the star near the cross")]
    images = [torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    batch = collate_prompts(collator, samples, images)
    with torch.no_grad():
        one = cell_logprobs(model, batch, 1.0)
        hot = cell_logprobs(model, batch, 3.0)
        # independent path: the spatial decoder on the <box> hidden state of a plain forward
        ids = torch.cat([batch["prompt_input_ids"],
                         torch.tensor([[model.box_id, model.eos_id]] * 2)], 1)  # fmt: skip
        att = torch.cat([batch["prompt_attention_mask"], torch.ones(2, 2, dtype=torch.long)], 1)
        keep = {k: v for k, v in batch.items() if k.startswith(("image", "region_"))}
        out = model({**keep, "input_ids": ids, "attention_mask": att})
    torch.testing.assert_close(one["logp"].exp(), out["box_attn"].float(), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(one["boxes"], out["box_pred"].float())
    torch.testing.assert_close(hot["logp"], (one["logp"] / 3.0).log_softmax(-1), atol=1e-5, rtol=0)
    assert one["grid_hw"][0] * one["grid_hw"][1] == one["logp"].shape[1]
    torch.testing.assert_close(one["log_size"].exp(), out["box_size"].float())


def test_a_row_without_exactly_one_trigger_is_an_error(tiny_corpus: Path, monkeypatch):
    cfg = compose_train(["model=tiny", f"paths.data_dir={tiny_corpus}", *CORPUS])
    model = instantiate(cfg.model).eval()
    collator = Collator(model.tokenizer, model.region_tokens)
    batch = collate_prompts(collator, [rec_sample(ImageInfo("i", "u.png", 8, 8), "x")],
                            [torch.zeros(3, 64, 64)])  # fmt: skip
    real = model.forward

    def no_trigger(b):
        out = real(b)
        return {**out, "box_batch": out["box_batch"][:0]}

    monkeypatch.setattr(model, "forward", no_trigger)
    with pytest.raises(ValueError, match="exactly one <box>"):
        cell_logprobs(model, batch)


def test_head_noun_is_the_first_category_word():
    names = {"circle", "heart", "star"}
    assert head_noun("the red heart near the star", names) == "heart"
    assert head_noun("where is the Star?", names) == "star"
    assert head_noun("the thing on the left", names) is None


def test_ground_rows_claim_boxes_of_more_confident_other_categories(monkeypatch):
    queries = ["the circle", "the heart", "the red circle", "the thing"]
    boxes = [(0.0, 0.0, 0.2, 0.2), (0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 0.7, 0.7), (0.1, 0, 1, 1)]
    peak = [0.9, 0.4, 0.8, 0.95]  # confidence: the peak cell probability of each query

    def fake_cells(model, batch, temperature=1.0):
        assert [s.prompt for s in batch["samples"]] == [f"where is {q}?" for q in queries]
        p = torch.tensor(peak)[:, None]
        return {
            "logp": torch.cat([p, 1 - p], 1).log(),
            "boxes": torch.tensor(boxes, dtype=torch.float64),
        }

    monkeypatch.setattr(grounding, "cell_logprobs", fake_cells)
    monkeypatch.setattr(
        grounding, "collate_prompts", lambda c, samples, im, d: {"samples": samples}
    )
    item = {"scene": type("S", (), {"image": ImageInfo("i", "u.png", 10, 10)})(),
            "image": torch.zeros(3, 4, 4), "size": (10, 10), "expressions": queries,
            "proposals": [(0, 0, 2, 2), (5, 5, 7, 7)]}  # fmt: skip
    samples, images = ground_rows(None, None, [(0, item, [1, 0, 3])], {"circle", "heart"})
    assert [s.meta["query"] for s in samples] == ["the heart", "the circle", "the thing"]
    assert len(images) == 3 and all(s.meta["role"] == "ground" for s in samples)
    # the heart (0.4) defers to both more confident circles; the circle (0.9) to nobody;
    # "the thing" names no category: no claims
    assert samples[0].meta["claimed"] == [boxes[0], boxes[2]]
    assert samples[1].meta["claimed"] == [] and samples[2].meta["claimed"] == []
    assert samples[0].meta["proposals"] == [(0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 0.7, 0.7)]
    assert samples[0].meta["greedy"] == boxes[1]
