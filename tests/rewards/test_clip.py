"""The CLIP semantic score equals a direct open_clip computation (tiny random-init model
saved to a local file: nothing is downloaded)."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from scalar.rewards.clip import ClipScorer, crop
from scalar.rewards.functions import semantic_reward

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 1, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    (root / "scalar-test-clip.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(str(root))
    torch.manual_seed(0)
    model = open_clip.create_model("scalar-test-clip", pretrained=None)
    torch.save(model.state_dict(), root / "weights.pt")
    return root


def test_semantic_score_equals_a_direct_open_clip_computation(tiny_clip):
    scorer = ClipScorer("scalar-test-clip", str(tiny_clip / "weights.pt"), str(tiny_clip))
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    boxes, texts = (
        [(0, 0, 30, 20), (10, 5, 60, 40)],
        ["a red circle", "the blue star left of a cross"],
    )
    crops = [crop(image, b, (60, 40)) for b in boxes]
    assert crops[0].size == (30, 20) and crops[1].size == (50, 35)
    img, txt = scorer.embed(crops, texts)
    got = semantic_reward(img, txt)
    # direct: a second model from the same file, its own transforms and tokenizer
    model, _, pre = open_clip.create_model_and_transforms("scalar-test-clip", pretrained=None)
    model.load_state_dict(torch.load(tiny_clip / "weights.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        pix = torch.stack([pre(image.crop(b)) for b in boxes])
        tok = open_clip.tokenizer.SimpleTokenizer(context_length=16)(texts)
        cos = (F.normalize(model.encode_image(pix), dim=-1)
               * F.normalize(model.encode_text(tok), dim=-1)).sum(-1)  # fmt: skip
    np.testing.assert_allclose(got, ((cos + 1) / 2).numpy(), rtol=1e-5, atol=1e-6)
    assert abs(got[0] - got[1]) > 1e-4  # the two pairs differ


def test_a_missing_weights_file_is_one_clear_error(tiny_clip):
    with pytest.raises(ValueError, match="CLIP weights file not found"):
        ClipScorer("scalar-test-clip", str(tiny_clip / "missing.pt"))
