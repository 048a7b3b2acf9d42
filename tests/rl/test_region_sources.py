"""Region contexts of labeled rows: reference entities, counts, localization by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalar.data.sample import Sample, VisualPrompt
from scalar.data.scene import ImageInfo
from scalar.rewards.functions import counting_reward, localization_reward
from scalar.rewards.mentions import entity_mention_reward
from scalar.rl import region_sources
from scalar.rl.region_sources import RegionPrompts

INFO = ImageInfo("im", "unused.png", 100, 50)


def _batch():
    cap = Sample("caption", INFO, "describe <region>.", "a red circle left of a star",
                 [VisualPrompt("box", (0, 0, 50, 50))], [],
                 {"references": ["a red circle left of a star", "a big red circle"]})  # fmt: skip
    count = Sample("spatial_qa", INFO, "how many stars are there?", "2", [], [],
                   {"question_type": "count", "value": 2})  # fmt: skip
    other = Sample("spatial_qa", INFO, "is the star left of the box?", "yes", [], [],
                   {"question_type": "left_right", "value": True})  # fmt: skip
    return {
        "samples": [cap, count, other],
        "prompt_input_ids": torch.zeros(3, 2),
        "target_boxes": torch.zeros(0, 4),
        "target_batch": torch.zeros(0, dtype=torch.long),
        "images": torch.zeros(1, 3, 8, 8),
        "image_index": torch.zeros(3, dtype=torch.long),
    }


def _source(**kw):
    src = RegionPrompts(tasks=["caption", "spatial_qa"], semantic="none", **kw)
    src.names = ["box", "circle", "cross", "star"]
    # the circle and a cross lie in the region (centres inside), the star does not
    src.objects = {"im": [((5, 5, 25, 25), "circle"), ((30, 30, 45, 45), "cross"),
                          ((60, 10, 80, 30), "star")]}  # fmt: skip
    return src


def test_entities_and_counts_of_labeled_rows():
    gen = {"texts": ["a circle and a box", "three", "no"], "boxes": [[], [], []]}
    ctxs = _source(localize=False).contexts(None, _batch(), gen)
    by_rows = {tuple(r): c for r, c in ctxs}
    cap = by_rows[(0,)]
    assert cap["entities"] == [["circle", "cross", "star"]]  # objects, then reference names
    assert cap["mentions"] == [["box", "circle"]]
    np.testing.assert_allclose(entity_mention_reward(cap["texts"], cap["entities"]), [1 / 3])
    cnt = by_rows[(1,)]
    assert cnt["pred_counts"] == [3] and cnt["gt_counts"] == [2]
    np.testing.assert_allclose(counting_reward(cnt["pred_counts"], cnt["gt_counts"]), [0.5])
    assert set(by_rows[(2,)]) == {"texts"}  # not a count question: no count context


def test_localization_grounds_the_mentioned_names(monkeypatch):
    asked = []

    def fake_ground(model, collator, images, infos, texts, budget, device=None):
        asked.extend(texts)
        return [{"circle": (0.05, 0.1, 0.25, 0.5), "box": None}[t] for t in texts]

    monkeypatch.setattr(region_sources, "ground", fake_ground)
    gen = {"texts": ["a circle and a box", "3", "no"], "boxes": [[], [], []]}
    ctx = {tuple(r): c for r, c in _source().contexts(None, _batch(), gen)}[(0,)]
    assert asked == ["box", "circle"]
    assert ctx["pred_boxes_list"] == [[(0.05, 0.1, 0.25, 0.5)]]  # the box was not found
    # references: the region and its objects, in [0, 1] of the 100 x 50 image
    want = [[(0.0, 0.0, 0.5, 1.0), (0.05, 0.1, 0.25, 0.5), (0.3, 0.6, 0.45, 0.9)]]
    np.testing.assert_allclose(np.array(ctx["ref_boxes_list"][0]), np.array(want[0]))
    assert localization_reward(ctx["pred_boxes_list"], ctx["ref_boxes_list"])[0] == pytest.approx(
        1.0
    )


def test_semantic_clip_without_a_model_is_one_clear_error():
    with pytest.raises(ValueError, match="clip_model and rl.prompts.clip_weights"):
        RegionPrompts(semantic="clip")
    with pytest.raises(ValueError, match="semantic must be one of"):
        RegionPrompts(semantic="siglip")


def test_clip_semantic_context_is_the_crop_of_the_region(tmp_path):
    import json

    import open_clip
    from PIL import Image

    from scalar.rewards.clip import ClipScorer, crop
    from tests.rewards.test_clip import TINY

    (tmp_path / "scalar-test-clip.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(str(tmp_path))
    torch.manual_seed(0)
    torch.save(open_clip.create_model("scalar-test-clip").state_dict(), tmp_path / "w.pt")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (50, 100, 3), dtype=np.uint8)).save(tmp_path / "im.png")
    info = ImageInfo("im", str(tmp_path / "im.png"), 100, 50)
    batch = _batch()
    batch["samples"][0].image = info
    src = RegionPrompts(tasks=["caption"], semantic="clip", clip_model="scalar-test-clip",
                        clip_weights=str(tmp_path / "w.pt"), clip_configs=str(tmp_path),
                        localize=False)  # fmt: skip
    src.names, src.objects = ["circle"], {}
    gen = {"texts": ["a red circle", "2", "no"], "boxes": [[], [], []]}
    ctx = {tuple(r): c for r, c in src.contexts(None, batch, gen)}[(0,)]
    with Image.open(tmp_path / "im.png") as im:
        want = src.clip.embed(
            [crop(im.convert("RGB"), (0, 0, 50, 50), (100, 50))], ["a red circle"]
        )
    torch.testing.assert_close(ctx["region_embeddings"], want[0])
    torch.testing.assert_close(ctx["text_embeddings"], want[1])
    assert isinstance(src.clip, ClipScorer)
