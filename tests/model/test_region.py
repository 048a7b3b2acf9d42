"""Region prompt encoder: box, mask and point pooling against hand computations."""

import pytest
import torch

from scalar.model.region import (
    RegionPromptEncoder,
    fourier_encode,
    pool_box,
    pool_mask,
    pool_mask_cells,
    pool_point,
    tokens_to_grid,
)

H, W = 6, 8


def _coord_features(b=1):
    """[b, 2, H, W]: channel 0 = cell-centre x, channel 1 = cell-centre y (in [0, 1])."""
    xs = (torch.arange(W) + 0.5) / W
    ys = (torch.arange(H) + 0.5) / H
    f = torch.stack([xs[None, :].expand(H, W), ys[:, None].expand(H, W)])
    return f[None].repeat(b, 1, 1, 1)


def test_tokens_to_grid_is_row_major():
    tokens = torch.arange(2 * H * W * 3, dtype=torch.float32).view(2, H * W, 3)
    grid = tokens_to_grid(tokens, (H, W))
    assert grid.shape == (2, 3, H, W)
    assert torch.equal(grid[1, :, 2, 5], tokens[1, 2 * W + 5])
    with pytest.raises(ValueError):
        tokens_to_grid(tokens, (H, W + 1))


def test_pool_box_constant_region_and_coordinate_centre():
    f = torch.zeros(2, 1, H, W)
    # constant region in image 1, one cell wider than the box (bilinear support)
    f[1, 0, 0:5, 1:7] = 3.5
    box = torch.tensor([[2 / W, 1 / H, 6 / W, 4 / H]])
    out = pool_box(f, box, torch.tensor([1]), size=2)
    assert torch.allclose(out, torch.full_like(out, 3.5), atol=1e-6)
    # features = coordinates: the mean of the pooled cells is the box centre
    boxes = torch.tensor([[0.2, 0.25, 0.7, 0.6], [0.1, 0.1, 0.5, 0.9]])
    pooled = pool_box(_coord_features(2), boxes, torch.tensor([0, 1]), size=3).mean(dim=(-2, -1))
    centre = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    assert torch.allclose(pooled, centre, atol=1e-5)


def test_pool_mask_is_hand_computed_masked_mean():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(2, 4, H, W, generator=g)
    # mask on a 12x16 raster: 2x2 raster pixels per cell
    m = torch.zeros(1, 12, 16)
    m[0, 2:4, 4:6] = 1.0  # covers cell (1, 2) fully
    m[0, 6, 10] = 1.0  # covers a quarter of cell (3, 5)
    got = pool_mask(f, m, torch.tensor([1]))
    want = (f[1, :, 1, 2] * 1.0 + f[1, :, 3, 5] * 0.25) / 1.25
    assert torch.allclose(got[0], want, atol=1e-6)


def test_mask_cells_fall_back_to_mean_and_match_constant():
    f = torch.zeros(1, 1, H, W)
    f[0, 0, :, :4] = 2.0
    m = torch.zeros(1, 12, 16)
    m[0, :, :8] = 1.0  # left half of the image, where features are 2
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])  # loose box: right cells are outside the mask
    cells = pool_mask_cells(f, m, box, torch.tensor([0]), size=2)
    assert torch.allclose(cells, torch.full_like(cells, 2.0), atol=1e-5)


def test_point_window_picks_the_right_cell():
    f = torch.arange(H * W, dtype=torch.float32).view(1, 1, H, W).repeat(2, 1, 1, 1)
    f[1] += 1000
    pts = torch.tensor([[0.55, 0.4], [0.99, 0.01], [0.0, 0.0]])
    win = pool_point(f, pts, torch.tensor([0, 1, 0]), window=3)
    assert win.shape == (3, 1, 3, 3)
    # (0.55, 0.4) -> column 4, row 2
    assert win[0, 0, 1, 1] == 2 * W + 4
    assert torch.equal(win[0, 0], torch.tensor([[11.0, 12, 13], [19, 20, 21], [27, 28, 29]]))
    # top-right corner of image 1, borders replicated
    assert win[1, 0, 1, 1] == 1000 + W - 1
    assert win[1, 0, 0, 2] == 1000 + W - 1
    assert win[1, 0, 2, 1] == 1000 + 2 * W - 1
    assert win[2, 0, 1, 1] == 0


def test_fourier_encode_values():
    x = torch.tensor([[0.25, 0.5]])
    enc = fourier_encode(x, 2)
    assert enc.shape == (1, 2 * 5)
    import math

    want = [0.25, math.sin(math.pi * 0.25), math.sin(2 * math.pi * 0.25)]
    want += [math.cos(math.pi * 0.25), math.cos(2 * math.pi * 0.25)]
    assert torch.allclose(enc[0, :5], torch.tensor(want), atol=1e-6)


def _prompts():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.3, 0.3], [0.5, 0.0, 1.0, 0.5]])
    kinds = torch.tensor([0, 1, 2])
    masks = torch.zeros(3, 16, 16)
    masks[2, :8, 8:] = 1.0
    return boxes, kinds, masks, torch.tensor([0, 1, 1])


def test_encoder_all_kinds_shapes_and_gradients():
    torch.manual_seed(0)
    enc = RegionPromptEncoder(dim=32, in_dim=16, num_tokens=5, grid_pool=2)
    patches = torch.randn(2, H * W, 16, requires_grad=True)
    boxes, kinds, masks, batch = _prompts()
    out = enc(patches, (H, W), boxes, kinds, batch, masks)
    assert out["tokens"].shape == (3, 5, 32)
    assert out["pooled"].shape == (3, 32)
    assert torch.isfinite(out["tokens"]).all()
    out["pooled"].pow(2).sum().backward()
    assert patches.grad[0].abs().sum() > 0 and patches.grad[1].abs().sum() > 0


def test_encoder_tokens_depend_on_the_prompted_features():
    torch.manual_seed(0)
    enc = RegionPromptEncoder(dim=16, num_tokens=3, grid_pool=2).eval()
    patches = torch.randn(1, H * W, 16)
    box = torch.tensor([[0.0, 0.0, 0.25, 0.25]])
    args = (box, torch.tensor([0]), torch.tensor([0]))
    a = enc(patches, (H, W), *args)["tokens"]
    far = patches.clone().view(1, H, W, 16)
    far[:, 4:, 4:] += 3 * torch.randn(2, 4, 16)  # outside the box: no effect
    b = enc(far.view(1, H * W, 16), (H, W), *args)["tokens"]
    near = patches.clone().view(1, H, W, 16)
    near[:, 0, 0] += 3 * torch.randn(16)  # inside the box: changes the tokens
    c = enc(near.view(1, H * W, 16), (H, W), *args)["tokens"]
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-3)


def test_encoder_rejects_bad_input():
    enc = RegionPromptEncoder(dim=8)
    patches = torch.randn(1, H * W, 8)
    box = torch.tensor([[0.1, 0.1, 0.2, 0.2]])
    with pytest.raises(ValueError, match="kinds"):
        enc(patches, (H, W), box, torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="region_masks"):
        enc(patches, (H, W), box, torch.tensor([2]), torch.tensor([0]))
