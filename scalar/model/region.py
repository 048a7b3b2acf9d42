"""Region prompt encoder: a box, point or mask prompt -> K soft tokens + a pooled embedding.

Features are pooled from the patch grid (row-major ``[B, h*w, D]`` covering the whole
image): RoI-align for boxes, masked pooling for masks, a small window of cells for points.
A Fourier encoding of the prompt geometry and a kind embedding are added.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

BOX, POINT, MASK = 0, 1, 2
_EPS = 1e-6


def tokens_to_grid(tokens: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """``[B, h*w, D]`` row-major patch tokens -> ``[B, D, h, w]`` feature map."""
    h, w = grid_hw
    b, p, d = tokens.shape
    if p != h * w:
        raise ValueError(f"patch tokens have {p} positions but the grid is {h}x{w}")
    return tokens.transpose(1, 2).reshape(b, d, h, w)


def _rois(boxes01: Tensor, batch_idx: Tensor, h: int, w: int) -> Tensor:
    scale = boxes01.new_tensor([w, h, w, h], dtype=torch.float32)
    return torch.cat([batch_idx.float()[:, None], boxes01.float() * scale], dim=1)


def pool_box(features: Tensor, boxes01: Tensor, batch_idx: Tensor, size: int = 2) -> Tensor:
    """RoI-align ``boxes01 [R, 4]`` (xyxy in [0, 1]) over ``features [B, D, h, w]``.

    Returns ``[R, D, size, size]``; cell ``(i, j)`` of the grid is the pixel area
    ``[j/w, (j+1)/w] x [i/h, (i+1)/h]`` of the image (``aligned=True``).
    """
    h, w = features.shape[-2:]
    out = roi_align(
        features.float(),
        _rois(boxes01, batch_idx, h, w),
        output_size=size,
        spatial_scale=1.0,
        sampling_ratio=2,
        aligned=True,
    )
    return out.to(features.dtype)


def resize_masks(masks: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """``[R, M, M]`` masks over the image -> ``[R, h, w]`` cell coverage (area interpolation)."""
    return F.interpolate(masks[:, None].float(), size=tuple(grid_hw), mode="area")[:, 0]


def pool_mask(features: Tensor, masks: Tensor, batch_idx: Tensor) -> Tensor:
    """Mask-weighted mean of cell features: ``[B, D, h, w]``, ``[R, M, M]`` -> ``[R, D]``.

    Masks are resized to the grid with area interpolation, so a cell's weight is the
    fraction of it covered by the mask.
    """
    weights = resize_masks(masks, features.shape[-2:]).to(features.dtype)  # [R, h, w]
    feats = features[batch_idx]  # [R, D, h, w]
    num = (feats * weights[:, None]).sum(dim=(-2, -1))
    return num / weights.sum(dim=(-2, -1))[:, None].clamp(min=_EPS)


def pool_mask_cells(
    features: Tensor, masks: Tensor, boxes01: Tensor, batch_idx: Tensor, size: int = 2
) -> Tensor:
    """``size x size`` masked sub-pools over the mask's box: ``[R, D, size, size]``.

    Each sub-pool is RoI-align of (features * mask) divided by RoI-align of the mask;
    sub-cells the mask barely covers fall back to the whole-mask mean.
    """
    weights = resize_masks(masks, features.shape[-2:]).to(features.dtype)[:, None]
    feats = features[batch_idx]
    idx = torch.arange(len(masks), device=masks.device)
    num = pool_box(feats * weights, boxes01, idx, size)
    den = pool_box(weights, boxes01, idx, size)
    mean = pool_mask(features, masks, batch_idx)[:, :, None, None]
    covered = den > 1e-3
    return torch.where(covered, num / den.clamp(min=_EPS), mean)


def point_cells(points01: Tensor, grid_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Row and column of the cell containing each point ``[R, 2]`` (x, y in [0, 1])."""
    h, w = grid_hw
    col = (points01[:, 0] * w).floor().long().clamp(0, w - 1)
    row = (points01[:, 1] * h).floor().long().clamp(0, h - 1)
    return row, col


def pool_point(features: Tensor, points01: Tensor, batch_idx: Tensor, window: int = 3) -> Tensor:
    """The ``window x window`` cells centred on each point's cell: ``[R, D, window, window]``.

    Borders replicate the edge cells. The centre entry is the cell containing the point.
    """
    if window % 2 != 1:
        raise ValueError(f"point window must be odd, got {window}")
    r = window // 2
    h, w = features.shape[-2:]
    row, col = point_cells(points01, (h, w))
    padded = F.pad(features, (r, r, r, r), mode="replicate") if r else features
    offs = torch.arange(window, device=features.device)
    rows = (row[:, None] + offs)[:, :, None]  # padded coords: cell row + r + (o - r)
    cols = (col[:, None] + offs)[:, None, :]
    out = padded[batch_idx[:, None, None], :, rows, cols]  # [R, win, win, D]
    return out.permute(0, 3, 1, 2)


def fourier_encode(coords: Tensor, num_freqs: int) -> Tensor:
    """``[R, C]`` values in [0, 1] -> ``[R, C * (1 + 2 * num_freqs)]``: raw, sin, cos.

    Frequencies are ``pi * 2**f`` for ``f = 0 .. num_freqs - 1``.
    """
    freqs = math.pi * (2.0 ** torch.arange(num_freqs, device=coords.device, dtype=coords.dtype))
    ang = coords[..., None] * freqs  # [R, C, F]
    enc = torch.cat([coords[..., None], ang.sin(), ang.cos()], dim=-1)
    return enc.flatten(-2)


class RegionPromptEncoder(nn.Module):
    """Visual prompts -> ``tokens [R, K, dim]`` and ``pooled [R, dim]``.

    Per prompt, ``2 + grid_pool**2`` source tokens are built: the geometry token
    (Fourier encoding of the box, or of the point as ``(x, y, x, y)``, plus a kind
    embedding), the summary feature (box: mean of the RoI cells, mask: masked mean,
    point: the point's cell) and ``grid_pool x grid_pool`` cell features (box: RoI-align,
    mask: masked sub-pools over the mask's box, point: a ``point_window`` window pooled
    to the grid). A learned ``[K, 2 + grid_pool**2]`` mixing matrix (identity-initialised
    where it fits, the mean elsewhere) gives the K output tokens; ``pooled`` is their mean.
    """

    def __init__(
        self,
        dim: int,
        in_dim: int | None = None,
        num_tokens: int = 4,
        grid_pool: int = 2,
        num_freqs: int = 8,
        point_window: int = 3,
    ):
        super().__init__()
        in_dim = in_dim or dim
        self.dim, self.num_tokens, self.grid_pool = dim, num_tokens, grid_pool
        self.num_freqs, self.point_window = num_freqs, point_window
        self.feat_proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, dim))
        self.geo_proj = nn.Sequential(
            nn.Linear(4 * (1 + 2 * num_freqs), dim), nn.GELU(), nn.Linear(dim, dim)
        )
        self.kind_embed = nn.Embedding(3, dim)
        self.slot_embed = nn.Parameter(torch.zeros(2 + grid_pool**2, dim))
        num_src = 2 + grid_pool**2
        mix = torch.full((num_tokens, num_src), 1.0 / num_src)
        for k in range(min(num_tokens, num_src)):
            mix[k].zero_()
            mix[k, k] = 1.0
        self.mix = nn.Parameter(mix)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.slot_embed, std=0.02)

    def pool_features(
        self,
        features: Tensor,
        boxes: Tensor,
        kinds: Tensor,
        masks: Tensor | None,
        batch: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Summary ``[R, D]`` and cells ``[R, D, g, g]`` from ``features [B, D, h, w]``."""
        r, d, g = len(boxes), features.shape[1], self.grid_pool
        summary = features.new_zeros(r, d)
        cells = features.new_zeros(r, d, g, g)
        sel = kinds == BOX
        if sel.any():
            c = pool_box(features, boxes[sel], batch[sel], g)
            cells[sel], summary[sel] = c, c.mean(dim=(-2, -1))
        sel = kinds == MASK
        if sel.any():
            if masks is None:
                raise ValueError("mask prompts need region_masks")
            m, b = masks[sel], batch[sel]
            summary[sel] = pool_mask(features, m, b)
            cells[sel] = pool_mask_cells(features, m, boxes[sel], b, g)
        sel = kinds == POINT
        if sel.any():
            pts = (boxes[sel, :2] + boxes[sel, 2:]) / 2
            win = pool_point(features, pts, batch[sel], self.point_window)
            c = self.point_window // 2
            summary[sel] = win[:, :, c, c]
            cells[sel] = F.adaptive_avg_pool2d(win, g)
        bad = (kinds < 0) | (kinds > MASK)
        if bad.any():
            raise ValueError(f"region kinds must be 0 (box), 1 (point) or 2 (mask): {kinds[bad]}")
        return summary, cells

    def forward(
        self,
        patch_tokens: Tensor,
        grid_hw: tuple[int, int],
        region_boxes: Tensor,
        region_kinds: Tensor,
        region_batch: Tensor,
        region_masks: Tensor | None = None,
    ) -> dict[str, Tensor]:
        # work in this encoder's own dtype (the tower may be frozen in bf16)
        features = tokens_to_grid(patch_tokens.to(self.slot_embed.dtype), grid_hw)
        boxes = region_boxes.to(features.dtype).clamp(0, 1)
        summary, cells = self.pool_features(
            features, boxes, region_kinds, region_masks, region_batch
        )
        feats = torch.cat([summary[:, None], cells.flatten(2).transpose(1, 2)], dim=1)
        feats = self.feat_proj(feats)  # [R, 1 + g*g, dim]
        geo = fourier_encode(boxes.float(), self.num_freqs).to(feats.dtype)
        geo = self.geo_proj(geo) + self.kind_embed(region_kinds)
        src = torch.cat([geo[:, None], feats], dim=1) + self.slot_embed  # [R, S, dim]
        tokens = self.norm(torch.einsum("ks,rsd->rkd", self.mix.to(src.dtype), src))
        return {"tokens": tokens, "pooled": tokens.mean(dim=1)}
