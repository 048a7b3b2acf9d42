"""Vision tower: open_clip factory, patch grid, preprocessing checks, local weights only."""

import json

import open_clip
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from scalar.model.spatial import sincos_2d
from scalar.model.vision import VisionTower, register_configs


def _numel(module):
    return sum(p.numel() for p in module.parameters())


def test_tiny_conv_tower_tokens_match_its_own_stages():
    torch.manual_seed(0)
    tower = VisionTower("scalar-tiny", image_size=64, freeze=False, feature_layer=2).eval()
    assert tower.kind == "resnet" and tower.grid_hw == (8, 8) and tower.dim == 256
    images = torch.randn(2, 3, 64, 64)
    tokens, grid = tower(images)
    assert grid == (8, 8) and tokens.shape == (2, 64, 256)
    v = tower.visual  # reference: open_clip's stem -> layer1 -> layer2, then row-major + sincos
    fmap = v.layer2(v.layer1(v.stem(images)))
    ref = fmap.flatten(2).transpose(1, 2) + sincos_2d((8, 8), 256)
    assert torch.allclose(tokens, ref, atol=1e-6)
    # cell (row 2, col 5) of the map is token 2 * 8 + 5
    assert torch.allclose(tokens[1, 21], fmap[1, :, 2, 5] + sincos_2d((8, 8), 256)[21], atol=1e-6)


def test_tiny_tower_is_cut_after_the_feature_layer():
    register_configs()
    clip = open_clip.create_model("scalar-tiny")
    v = clip.visual
    expected = sum(_numel(m) for m in (v.conv1, v.bn1, v.conv2, v.bn2, v.conv3, v.bn3))
    expected += _numel(v.layer1) + _numel(v.layer2)
    tower = VisionTower("scalar-tiny", freeze=False, feature_layer=2)
    assert _numel(tower) == expected < _numel(v)


def test_preprocess_config_and_mismatch():
    tower = VisionTower("scalar-tiny", feature_layer=2)
    assert tower.image_size == 64
    assert tower.mean == tuple(OPENAI_DATASET_MEAN) and tower.std == tuple(OPENAI_DATASET_STD)
    tower.check_preprocess(64, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)  # matches: no error
    with pytest.raises(ValueError, match="preprocessing mismatch"):
        tower.check_preprocess(128, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    with pytest.raises(ValueError, match="preprocessing mismatch"):
        tower.check_preprocess(64, (0.5, 0.5, 0.5), OPENAI_DATASET_STD)
    custom = VisionTower("scalar-tiny", feature_layer=2, mean=(0.5, 0.5, 0.5), std=(0.25,) * 3)
    custom.check_preprocess(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    with pytest.raises(ValueError, match="preprocessing mismatch"):
        custom.check_preprocess(64, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)


def test_frozen_tower_has_no_grads_and_stays_in_eval_mode():
    tower = VisionTower("scalar-tiny", feature_layer=2)  # freeze=True by default
    assert not any(p.requires_grad for p in tower.parameters())
    tower.train()
    assert not tower.visual.training and not tower.visual.bn1.training
    tower.set_frozen(False)
    assert all(p.requires_grad for p in tower.parameters()) and tower.visual.bn1.training


def test_vit_tower_drops_class_token_and_later_blocks(tmp_path):
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 3,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
        },
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 1, "layers": 1},
    }
    (tmp_path / "test-vit-micro.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "test-vit-micro.json")
    torch.manual_seed(0)
    ref = open_clip.create_model("test-vit-micro").visual.eval()
    tower = VisionTower("test-vit-micro", feature_layer=-2).eval()
    assert tower.kind == "vit" and tower.dim == 32 and tower.grid_hw == (4, 4)
    assert len(tower.visual.transformer.resblocks) == 2 and tower.visual.proj is None
    tower.visual.load_state_dict(ref.state_dict(), strict=False)
    images = torch.randn(2, 3, 32, 32)
    tokens, grid = tower(images)
    x = ref._embeds(images)  # reference: embeddings -> blocks 0, 1 -> drop the class token
    for blk in ref.transformer.resblocks[:2]:
        x = blk(x)
    assert grid == (4, 4) and torch.allclose(tokens, x[:, 1:], atol=1e-5)


def test_pretrained_weights_load_from_a_local_file(tmp_path):
    register_configs()
    torch.manual_seed(1)
    clip = open_clip.create_model("scalar-tiny")
    path = tmp_path / "tiny.pt"
    torch.save(clip.state_dict(), path)
    tower = VisionTower("scalar-tiny", pretrained=str(path), feature_layer=2)
    assert torch.equal(tower.visual.layer2[0].conv2.weight, clip.visual.layer2[0].conv2.weight)
    with pytest.raises(FileNotFoundError, match="model.vision.pretrained"):
        VisionTower("scalar-tiny", pretrained=str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="model.vision.pretrained"):
        VisionTower("scalar-tiny", require_pretrained=True)
    with pytest.raises(ValueError, match="unknown open_clip model"):
        VisionTower("no-such-tower")
