"""Spatial decoder: soft-argmax centre, ranges, gradients, learning a marked cell."""

import pytest
import torch
from torch import nn

from scalar.model.spatial import SpatialDecoder, cell_centres, sincos_2d, soft_argmax, to_pixels

H, W = 4, 6


def test_cell_centres_row_major():
    c = cell_centres((H, W))
    assert c.shape == (H * W, 2)
    assert torch.allclose(c[0], torch.tensor([0.5 / W, 0.5 / H]))
    assert torch.allclose(c[1 * W + 4], torch.tensor([4.5 / W, 1.5 / H]))
    pos = sincos_2d((H, W), 16)
    assert pos.shape == (H * W, 16)
    assert len({tuple(p.tolist()) for p in pos.round(decimals=4)}) == H * W  # all distinct


def test_soft_argmax_one_hot_and_uniform():
    attn = torch.zeros(2, H * W)
    attn[0, 2 * W + 3] = 1.0
    attn[1] = 1.0 / (H * W)
    c = soft_argmax(attn, (H, W))
    assert torch.allclose(c[0], torch.tensor([3.5 / W, 2.5 / H]))
    assert torch.allclose(c[1], torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize("grid_pos", ["sincos", "learned"])
def test_outputs_are_valid_boxes_and_gradients_reach_the_query(grid_pos):
    torch.manual_seed(0)
    dec = SpatialDecoder(
        dim=32, in_dim=48, vis_dim=24, num_layers=2, num_heads=4, grid_pos=grid_pos
    )
    q = torch.randn(5, 48, requires_grad=True)
    patches = torch.randn(5, H * W, 24, requires_grad=True)
    out = dec(q, patches, (H, W))
    b = out["boxes"]
    assert b.shape == (5, 4) and out["centre"].shape == (5, 2) and out["attn"].shape == (5, H * W)
    assert (b >= 0).all() and (b <= 1).all()
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    assert torch.allclose(out["attn"].sum(-1), torch.ones(5))
    b.sum().backward()
    assert q.grad.abs().sum() > 0 and patches.grad.abs().sum() > 0


def test_points_and_mixed_kinds():
    torch.manual_seed(0)
    dec = SpatialDecoder(dim=16, num_heads=2)
    q, patches = torch.randn(3, 16), torch.randn(3, H * W, 16)
    pts = dec(q, patches, (H, W), kind="point")
    assert torch.allclose(pts["boxes"][:, :2], pts["centre"])
    assert torch.allclose(pts["boxes"][:, 2:], pts["centre"])
    mixed = dec(q, patches, (H, W), kind=torch.tensor([0, 1, 0]))
    box = dec(q, patches, (H, W), kind="box")
    assert torch.allclose(mixed["boxes"][0], box["boxes"][0])
    assert torch.allclose(mixed["boxes"][1], pts["boxes"][1])
    with pytest.raises(ValueError):
        dec(q, patches, (H, W), kind="mask")


def test_hand_set_attention_lands_on_the_matching_cell():
    dim = 16
    dec = SpatialDecoder(dim=dim, num_layers=1, num_heads=2)
    u = torch.zeros(dim)
    u[0] = 1.0
    with torch.no_grad():
        nn.init.zeros_(dec.head_q.weight)
        dec.head_q.bias.copy_(u)  # the head query is u whatever the hidden state
        dec.head_k.weight.copy_(torch.eye(dim))
        nn.init.zeros_(dec.head_k.bias)
    target = (2, 4)  # row, column
    patches = torch.zeros(2, H * W, dim)
    patches[0, target[0] * W + target[1], 0] = 400.0  # one cell matches u strongly
    patches[1, 0, 0] = 400.0  # second image: the top-left cell
    out = dec(torch.randn(2, dim), patches, (H, W))
    want0 = torch.tensor([(target[1] + 0.5) / W, (target[0] + 0.5) / H])
    want1 = torch.tensor([0.5 / W, 0.5 / H])
    assert out["attn"][0].argmax() == target[0] * W + target[1]
    # the offset MLP starts at zero, so the centre is the soft-argmax itself
    assert torch.allclose(out["centre"][0], want0, atol=1e-4)
    assert torch.allclose(out["centre"][1], want1, atol=1e-4)
    box = out["boxes"][0]
    assert torch.allclose((box[:2] + box[2:]) / 2, want0, atol=0.2)


def test_to_pixels():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 1.0], [0.0, 0.0, 1.0, 0.5]])
    sizes = torch.tensor([[200, 100], [640, 480]])
    want = torch.tensor([[20.0, 20.0, 100.0, 100.0], [0.0, 0.0, 640.0, 240.0]])
    assert torch.allclose(to_pixels(boxes, sizes), want)
    assert torch.allclose(to_pixels(boxes[:, :2], sizes), want[:, :2])


def test_learns_to_point_at_the_marked_cell():
    """A few hundred steps of Adam: the decoder finds a cell marked in the features."""
    torch.manual_seed(0)
    dim, n = 16, 32
    dec = SpatialDecoder(dim=dim, num_layers=1, num_heads=2)
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    cells = cell_centres((H, W))

    def batch():
        idx = torch.randint(0, H * W, (n,))
        patches = 0.1 * torch.randn(n, H * W, dim)
        patches[torch.arange(n), idx, 0] += 3.0
        return patches, cells[idx]

    for _ in range(60):
        patches, target = batch()
        out = dec(torch.ones(n, dim), patches, (H, W))
        loss = (out["centre"] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    patches, target = batch()
    with torch.no_grad():
        err = (dec(torch.ones(n, dim), patches, (H, W))["centre"] - target).abs().max()
    assert err < 0.5 / W


def test_queries_sharing_images_equal_queries_with_their_own_copy():
    torch.manual_seed(0)
    dec = SpatialDecoder(dim=16, vis_dim=24, num_layers=2, num_heads=4).eval()
    images = torch.randn(3, 9, 24)  # three images of a 3x3 grid
    rows = torch.tensor([2, 0, 2, 1, 0])
    q = torch.randn(5, 16)
    shared = dec(q, images, (3, 3), rows=rows)
    copies = dec(q, images[rows], (3, 3))  # each query with its own copy of its image
    for key in ("boxes", "attn", "size"):
        assert torch.allclose(shared[key], copies[key], atol=1e-5), key
    # a query sees only its own image: changing another image changes nothing
    other = images.clone()
    other[1] += 5.0
    again = dec(q[:3], other, (3, 3), rows=rows[:3])  # rows 2, 0, 2: image 1 unused
    assert torch.allclose(again["boxes"], shared["boxes"][:3], atol=1e-6)
    with pytest.raises(ValueError, match="no rows"):
        dec(q, images, (3, 3))


def test_cells_head_trains_on_the_attention_weighted_mean_and_answers_the_chosen_cell():
    dim = 16
    torch.manual_seed(0)
    dec = SpatialDecoder(dim=dim, num_layers=1, num_heads=2, box_head="cells")
    patches = torch.randn(2, H * W, dim)
    out = dec(torch.randn(3, dim), patches, (H, W), rows=torch.tensor([0, 1, 1]))
    cells = out["cell_boxes"]
    assert cells.shape == (2, H * W, 4)
    # the last layer starts at a constant: every cell box is a square of side
    # 2 * sigmoid(-2.2) around its cell centre (clipped to the image)
    half = 1 / (1 + torch.exp(torch.tensor(2.2)))
    c = cell_centres((H, W))
    want = torch.cat([c - half, c + half], -1).clamp(0, 1)
    assert torch.allclose(cells[0], want, atol=1e-6) and torch.allclose(cells[1], want, atol=1e-6)
    # the answer is sum_p attn[n, p] * cells[image of n, p], computed by hand
    for n, u in enumerate([0, 1, 1]):
        mean = sum(out["attn"][n, p] * cells[u, p] for p in range(H * W))
        assert torch.allclose(out["boxes"][n], mean, atol=1e-6)
    assert torch.equal(out["offset"], torch.zeros(3, 2))
    # evaluation answers the box of the most attended cell alone (a mean over the cells of
    # two objects would be neither's box)
    dec.eval()
    with torch.no_grad():
        hard = dec(torch.randn(3, dim), patches, (H, W), rows=torch.tensor([0, 1, 1]))
    for n, u in enumerate([0, 1, 1]):
        assert torch.equal(hard["boxes"][n], hard["cell_boxes"][u, hard["attn"][n].argmax()])
    dec.train()
    assert torch.allclose(out["centre"], (out["boxes"][:, :2] + out["boxes"][:, 2:]) / 2)
    pts = dec(torch.randn(2, dim), patches, (H, W), kind="point")
    assert torch.equal(pts["boxes"][:, :2], pts["boxes"][:, 2:])
    with pytest.raises(ValueError, match="box_head"):
        SpatialDecoder(dim=dim, box_head="anchors")


def test_cells_head_learns_the_box_of_the_marked_object():
    # one object per image, marked in the patch features over its cells; the head must
    # answer its box from the cells alone (no size MLP on the query)
    torch.manual_seed(0)
    dim = 16
    dec = SpatialDecoder(dim=dim, num_layers=1, num_heads=2, box_head="cells")
    opt = torch.optim.Adam(dec.parameters(), 1e-2)
    c = cell_centres((H, W))

    def batch(n):
        x0, y0 = torch.rand(n) * 0.5, torch.rand(n) * 0.5
        boxes = torch.stack([x0, y0, x0 + 0.4, y0 + 0.45], -1)
        inside = (c[None, :, 0] >= boxes[:, None, 0]) & (c[None, :, 0] <= boxes[:, None, 2])
        inside &= (c[None, :, 1] >= boxes[:, None, 1]) & (c[None, :, 1] <= boxes[:, None, 3])
        patches = torch.zeros(n, H * W, dim)
        patches[..., 0] = inside.float() * 3
        patches[..., 1:3] = (c[None] - boxes[:, None, :2]) * inside[..., None]  # to the left/top
        return patches, boxes

    for _ in range(300):
        patches, boxes = batch(32)
        out = dec(torch.ones(32, dim), patches, (H, W))
        loss = (out["boxes"] - boxes).abs().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    patches, boxes = batch(64)
    with torch.no_grad():
        err = (dec(torch.ones(64, dim), patches, (H, W))["boxes"] - boxes).abs().mean()
    assert err < 0.03
