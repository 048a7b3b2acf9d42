"""Vision checkpoint files: every accepted layout loads, every other file is one clear line."""

from __future__ import annotations

import open_clip
import pytest
import torch

from scalar.model.vision import VisionTower, register_configs


@pytest.fixture(scope="module")
def clip():
    register_configs()
    torch.manual_seed(1)
    return open_clip.create_model("scalar-tiny")


@pytest.mark.parametrize("layout", ["full", "visual", "wrapped", "ddp"])
def test_accepted_layouts_load_exactly(clip, tmp_path, layout):
    full = clip.state_dict()
    visual = {k[len("visual.") :]: v for k, v in full.items() if k.startswith("visual.")}
    state = {
        "full": full,
        "visual": visual,
        "wrapped": {"state_dict": full, "epoch": 3},
        "ddp": {f"module.{k}": v for k, v in visual.items()},
    }[layout]
    path = tmp_path / f"{layout}.pt"
    torch.save(state, path)
    tower = VisionTower("scalar-tiny", pretrained=str(path), feature_layer=2)
    got = tower.visual.state_dict()
    assert got and all(torch.equal(v, visual[k]) for k, v in got.items())


def test_wrong_architecture_names_file_expected_and_found(tmp_path):
    register_configs()
    other = open_clip.create_model("scalar-tiny-vit")
    path = tmp_path / "vit.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError) as err:
        VisionTower("scalar-tiny", pretrained=str(path), feature_layer=2)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "model.vision.name='scalar-tiny'" in msg
    assert (
        "full CLIP state dict whose conv1.weight is 64x3x8x8 where scalar-tiny has 16x3x3x3" in msg
    )


def test_missing_tensors_are_counted(clip, tmp_path):
    visual = {k: v for k, v in clip.visual.state_dict().items() if not k.startswith("layer4")}
    path = tmp_path / "partial.pt"
    torch.save(visual, path)
    n = len(clip.visual.state_dict()) - len(visual)
    with pytest.raises(ValueError, match=f"a visual-only state dict without {n} of the tower"):
        VisionTower("scalar-tiny", pretrained=str(path), feature_layer=2)


def test_same_names_other_shapes(clip, tmp_path):
    state = dict(clip.state_dict())
    key = "visual.conv1.weight"
    state[key] = torch.zeros(7, *state[key].shape[1:])
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"whose conv1.weight is 7x3x3x3 where scalar-tiny has"):
        VisionTower("scalar-tiny", pretrained=str(path), feature_layer=2)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.bin"
    path.write_bytes(b"just some text, not a checkpoint\n" * 10)
    with pytest.raises(ValueError, match=r"notes.bin .*found a file torch.load cannot read"):
        VisionTower("scalar-tiny", pretrained=str(path), feature_layer=2)
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="found a list that is not a state dict"):
        VisionTower("scalar-tiny", pretrained=str(path), feature_layer=2)
