"""Proposals from the model's own groundings of the vocabulary (hand-built groundings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from scalar.data.scene import ImageInfo
from scalar.rl import model_proposals
from scalar.rl.model_proposals import ModelProposals, box_mask, select_regions

A, A2, B, C = (
    (0.0, 0.0, 0.5, 0.5),
    (0.05, 0.0, 0.5, 0.5),
    (0.5, 0.5, 1.0, 1.0),
    (0.6, 0.0, 0.9, 0.3),
)


def test_select_regions_keeps_confident_distinct_regions():
    g = [("circle", A, 0.9), ("heart", A2, 0.8), ("star", B, 0.5), ("cross", C, 0.1)]
    # heart overlaps circle (IoU 0.9): same region, dropped; cross under the threshold
    assert [w for w, _, _ in select_regions(g, 8, 0.2)] == ["circle", "star"]
    assert [w for w, _, _ in select_regions(g, 1, 0.0)] == ["circle"]
    assert [w for w, _, _ in select_regions(g, 8, 0.0)] == ["circle", "star", "cross"]
    assert [w for w, _, _ in select_regions(g, 8, 0.95)] == ["circle"]  # the first always
    assert [w for w, _, _ in select_regions(g, 8, 0.0, nms_iou=0.95)] == [
        "circle", "heart", "star", "cross"]  # fmt: skip


def test_box_mask_covers_the_box_pixels():
    m = mask_utils.decode(box_mask((2.4, 1.0, 5.2, 3.0), (8, 6)))
    want = np.zeros((6, 8), dtype=np.uint8)
    want[1:3, 2:6] = 1
    assert m.shape == (6, 8) and (m == want).all()


def test_fill_puts_the_model_regions_and_queries_in_the_items(monkeypatch):
    g = [("circle", A, 0.9), ("heart", A2, 0.8), ("star", B, 0.5), ("cross", C, 0.05)]
    monkeypatch.setattr(model_proposals, "word_groundings", lambda m, c, items, w, d: [g])
    item = {"scene": type("S", (), {"image": ImageInfo("i", "i.png", 10, 20)})(),
            "image": torch.zeros(3, 4, 4), "size": (10, 20), "proposals": [], "masks": [],
            "captions": ["a picture of a red circle and a kite"]}  # fmt: skip
    words = ["circle", "heart", "star", "cross"]
    ModelProposals(words, min_confidence=0.1, max_queries=3).fill(None, None, [item])
    assert item["proposals"] == [(0.0, 0.0, 5.0, 10.0), (5.0, 10.0, 10.0, 20.0)]
    assert item["proposal_words"] == ["circle", "star"] and len(item["masks"]) == 2
    # the most confident words (suppressed heart included), then the caption's phrases
    assert item["expressions"] == ["the circle", "the heart", "the star", "the red circle",
                                   "the kite"]  # fmt: skip
    assert item["heads"] == {"the kite": "kite"}  # an unknown word heads its own phrase
    # components kept (replace=False): only the queries come from the model
    item.update(proposals=[(1, 1, 3, 3)], masks=[None], captions=[])
    ModelProposals(words, replace=False, max_queries=1).fill(None, None, [item])
    assert item["proposals"] == [(1, 1, 3, 3)] and item["expressions"] == ["the circle"]
    with pytest.raises(ValueError, match="vocabulary"):
        ModelProposals([])


def test_model_proposal_quality_scores_each_object_by_its_best_proposal(tmp_path, monkeypatch):
    from PIL import Image

    from scalar.data.scene import Object, Scene
    from scalar.rl.proposal_quality import best_model_proposal_ious

    Image.new("RGB", (10, 20), "white").save(tmp_path / "i.png")
    objs = [Object(0, "circle", (0.0, 0.0, 5.0, 10.0)), Object(1, "star", (0.0, 10.0, 5.0, 20.0))]
    scene = Scene(image=ImageInfo("i", str(tmp_path / "i.png"), 10, 20), objects=objs)
    g = [("circle", A, 0.9), ("star", (0.0, 0.75, 0.5, 1.0), 0.5)]  # star: half its object
    monkeypatch.setattr(model_proposals, "word_groundings", lambda m, c, items, w, d: [g])
    dm = type("DM", (), {"image_size": 8, "mean": (0, 0, 0), "std": (1, 1, 1), "collator": None})
    ious = best_model_proposal_ious(None, dm, [scene], ["circle", "star"])
    assert ious == pytest.approx([1.0, 0.5])
