"""Spatial decoder (the "activated lightweight transformer").

The hidden state of a ``<box>``/``<point>`` trigger token queries a few cross-attention
blocks over the patch grid of its image; a last attention over the grid (keys carry 2-D
positions) chooses where the answer is. Two box heads read that attention:

- ``softargmax``: the centre is the attention-weighted mean of cell centres, plus a small
  bounded offset; an MLP on the query and the attended features gives width and height.
- ``cells``: every cell predicts the box of the object it lies on (its distances to the
  four sides, from the cell's own features: one box per cell, the same for every query),
  and the answer is the attention-weighted mean of those boxes. The cell boxes are
  trained on every annotated object of the image (``AlignLoss.cell_box_weight``), so the
  extent of objects is learnt from all of them, not only from the referred one; the query
  only has to choose the cells.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from scalar.core.boxes import denormalize_boxes
from scalar.model.region import fourier_encode

_MIN_SIZE = 1e-3
BOX_HEADS = ("softargmax", "cells")
_CELL_BIAS = -2.2  # cell boxes start as squares of side ~0.2 around their cell


def cell_centres(grid_hw: tuple[int, int], device=None, dtype=torch.float32) -> Tensor:
    """``[h*w, 2]`` (x, y) centres of the grid cells in [0, 1] image coordinates, row-major."""
    h, w = grid_hw
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=-1)


def sincos_2d(grid_hw: tuple[int, int], dim: int, device=None) -> Tensor:
    """Fixed 2-D sinusoidal embedding ``[h*w, dim]``: half the channels for x, half for y."""
    if dim % 4:
        raise ValueError(f"sincos position embedding needs dim divisible by 4, got {dim}")
    centres = cell_centres(grid_hw, device)  # [P, 2]
    n = dim // 4
    omega = 1.0 / (100.0 ** (torch.arange(n, device=device, dtype=torch.float32) / max(n, 1)))
    parts = []
    for axis in (0, 1):
        ang = centres[:, axis, None] * omega * 2 * math.pi * 8
        parts += [ang.sin(), ang.cos()]
    return torch.cat(parts, dim=-1)


def soft_argmax(attn: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """Attention ``[N, h*w]`` (rows sum to 1) -> expected cell centre ``[N, 2]`` in [0, 1]."""
    return attn @ cell_centres(grid_hw, attn.device, attn.dtype)


class _Block(nn.Module):
    """Pre-norm cross-attention + MLP block for a single query per image.

    Keys and values are projected once per image (``[U, P, dim]``) and gathered for the
    queries (``rows``): several queries of one image share the projection."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.heads = num_heads
        self.norm_q = nn.LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: Tensor, keys: Tensor, values: Tensor, rows: Tensor) -> Tensor:
        n, d, h = x.shape[0], x.shape[-1], self.heads
        u, p = keys.shape[:2]
        q = self.q(self.norm_q(x[:, 0])).view(n, h, d // h)
        k = self.k(keys).view(u, p, h, d // h)
        v = self.v(values).view(u * p, h, d // h)
        # scores against every image's keys, the other images masked out: dense matmuls
        # instead of gathering [N, P, dim] keys per query
        scores = torch.einsum("nhc,uphc->nhup", q, k) * (d // h) ** -0.5
        scores = scores.masked_fill(~own_image(rows, u)[:, None, :, None], float("-inf"))
        weights = scores.flatten(2).softmax(dim=-1)  # [N, h, U*P]
        a = torch.einsum("nhk,khc->nhc", weights, v).reshape(n, 1, d)
        x = x + self.out(a)
        return x + self.mlp(self.norm_mlp(x))


def own_image(rows: Tensor, num_images: int) -> Tensor:
    """``[N, U]`` one-hot of each query's image."""
    return rows[:, None] == torch.arange(num_images, device=rows.device)[None]


class SpatialDecoder(nn.Module):
    """Trigger hidden states + patch tokens -> boxes (xyxy in [0, 1]) or points.

    ``in_dim``: width of the trigger hidden states (LLM width), ``vis_dim``: width of the
    patch tokens; both default to ``dim``. ``grid_pos``: ``"sincos"`` (fixed) or
    ``"learned"`` (an MLP on a Fourier encoding of the cell centre, any grid size).
    ``box_head``: ``"softargmax"`` or ``"cells"`` (module docstring).
    """

    def __init__(
        self,
        dim: int,
        in_dim: int | None = None,
        vis_dim: int | None = None,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_ratio: int = 2,
        grid_pos: str = "sincos",
        num_freqs: int = 8,
        box_head: str = "softargmax",
    ):
        super().__init__()
        in_dim, vis_dim = in_dim or dim, vis_dim or dim
        if grid_pos not in ("sincos", "learned"):
            raise ValueError(f"grid_pos must be 'sincos' or 'learned', got {grid_pos!r}")
        if box_head not in BOX_HEADS:
            raise ValueError(f"box_head must be one of {list(BOX_HEADS)}, got {box_head!r}")
        self.dim, self.grid_pos, self.num_freqs = dim, grid_pos, num_freqs
        self.box_head = box_head
        self.in_proj = nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()
        self.mem_proj = nn.Linear(vis_dim, dim) if vis_dim != dim else nn.Identity()
        if grid_pos == "learned":
            self.pos_mlp = nn.Sequential(
                nn.Linear(2 * (1 + 2 * num_freqs), dim), nn.GELU(), nn.Linear(dim, dim)
            )
        self.blocks = nn.ModuleList(_Block(dim, num_heads, mlp_ratio) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.head_q = nn.Linear(dim, dim)
        self.head_k = nn.Linear(dim, dim)
        self.offset = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 2))
        self.size = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 2))
        nn.init.zeros_(self.offset[-1].weight)
        nn.init.zeros_(self.offset[-1].bias)
        if box_head == "cells":
            self.cell_box = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 4))
            nn.init.zeros_(self.cell_box[-1].weight)
            nn.init.constant_(self.cell_box[-1].bias, _CELL_BIAS)

    def positions(self, grid_hw: tuple[int, int], device) -> Tensor:
        """``[h*w, dim]`` position embeddings of the grid cells."""
        if self.grid_pos == "sincos":
            return sincos_2d(grid_hw, self.dim, device)
        enc = fourier_encode(cell_centres(grid_hw, device), self.num_freqs)
        return self.pos_mlp(enc)

    def forward(
        self,
        q: Tensor,
        patches: Tensor,
        grid_hw: tuple[int, int],
        kind: str | Tensor = "box",
        rows: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``q [N, in_dim]``; ``patches [U, h*w, vis_dim]``; ``rows [N]``: the image of
        each query (``None``: query ``i`` looks at image ``i``, U = N).

        ``kind``: ``"box"``, ``"point"`` or a ``[N]`` tensor (0 box, 1 point). Returns
        ``boxes [N, 4]`` xyxy in [0, 1] (points as ``(x, y, x, y)``), ``centre [N, 2]``,
        ``size [N, 2]`` (w, h), ``attn [N, h*w]`` (the soft-argmax weights), their
        ``attn_logits`` (float; log-probabilities need them: the weights underflow) and
        ``offset [N, 2]`` (the bounded correction added to the soft-argmax; zero with the
        ``cells`` head, which also returns ``cell_boxes [U, h*w, 4]``).
        """
        h, w = grid_hw
        if patches.shape[1] != h * w:
            raise ValueError(f"patches have {patches.shape[1]} positions, grid is {h}x{w}")
        if rows is None:
            if len(patches) != len(q):
                raise ValueError(f"{len(q)} queries but {len(patches)} images and no rows")
            rows = torch.arange(len(q), device=patches.device)
        rows = rows.to(patches.device)
        mem = self.mem_proj(patches)  # per image
        pos = self.positions(grid_hw, mem.device).to(mem.dtype)
        keys = mem + pos
        x = self.in_proj(q)[:, None]  # [N, 1, dim]
        for block in self.blocks:
            x = block(x, keys, mem, rows)
        x = self.norm(x)
        u, p = keys.shape[:2]
        head_k = self.head_k(keys).reshape(u * p, -1)
        logits = (self.head_q(x[:, 0]) @ head_k.T).view(-1, u, p) / math.sqrt(self.dim)
        logits = logits[torch.arange(len(rows), device=rows.device), rows]  # [N, P]
        attn = logits.float().softmax(dim=-1)  # [N, P]
        if self.box_head == "cells":
            cells = self.cell_boxes(mem, grid_hw)  # [U, P, 4]
            boxes = self._chosen_cell_box(attn, cells, rows)
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2
            size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=_MIN_SIZE)
            extra = {"offset": torch.zeros_like(centre), "cell_boxes": cells}
        else:
            boxes, centre, size, offset = self._softargmax_box(x[:, 0], attn, mem, rows, grid_hw)
            extra = {"offset": offset}
        is_point = self._is_point(kind, len(q), q.device)
        if is_point.any():
            boxes = torch.where(is_point[:, None], centre.repeat(1, 2), boxes)
        return {
            "boxes": boxes,
            "centre": centre,
            "size": size,
            "attn": attn,
            "attn_logits": logits.float(),
            **extra,
        }

    def _softargmax_box(self, x: Tensor, attn: Tensor, mem: Tensor, rows: Tensor, grid_hw):
        """``(boxes, centre, size, offset)``: the soft-argmax centre plus its bounded offset,
        and the size, both from the query ``x [N, dim]`` and the attended features."""
        h, w = grid_hw
        u, p = mem.shape[:2]
        centre = soft_argmax(attn, grid_hw)
        spread = attn.to(mem.dtype)[:, None] * own_image(rows, u)[..., None].to(mem.dtype)
        pooled = spread.reshape(len(rows), u * p) @ mem.reshape(u * p, -1)  # [N, dim]
        ctx = torch.cat([x, pooled], dim=-1)
        cell = centre.new_tensor([1.0 / w, 1.0 / h])
        offset = torch.tanh(self.offset(ctx).float()) * cell  # at most a cell either way
        centre = (centre + offset).clamp(0, 1)
        size = torch.sigmoid(self.size(ctx).float()) * (1 - _MIN_SIZE) + _MIN_SIZE
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1).clamp(0, 1)
        return boxes, centre, size, offset

    def cell_boxes(self, mem: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """``[U, h*w, 4]`` xyxy in [0, 1]: the box each cell predicts for the object it lies
        on (its distances to the four sides, at most the image side), from the projected
        patch features ``mem [U, h*w, dim]`` (``cells`` head only)."""
        dist = torch.sigmoid(self.cell_box(mem).float())  # [U, P, 4]: left, top, right, bottom
        c = cell_centres(grid_hw, mem.device)  # [P, 2]
        return torch.cat([c - dist[..., :2], c + dist[..., 2:]], dim=-1).clamp(0, 1)

    def _chosen_cell_box(self, attn: Tensor, cells: Tensor, rows: Tensor) -> Tensor:
        """``[N, 4]``: in training the attention-weighted mean of the query's image's cell
        boxes (the choice of cells stays differentiable); in evaluation the most attended
        cell's own box (a mean over two objects' cells is neither's box)."""
        if self.training:
            return torch.einsum("np,npc->nc", attn, cells[rows])
        return cells[rows, attn.argmax(-1)]

    @staticmethod
    def _is_point(kind: str | Tensor, n: int, device) -> Tensor:
        if isinstance(kind, Tensor):
            return kind.to(device) == 1
        if kind not in ("box", "point"):
            raise ValueError(f"kind must be 'box' or 'point', got {kind!r}")
        return torch.full((n,), kind == "point", dtype=torch.bool, device=device)


def to_pixels(boxes01: Tensor, image_sizes: Tensor) -> Tensor:
    """``[N, 4]`` boxes or ``[N, 2]`` points in [0, 1] -> pixels; ``image_sizes [N, 2]`` (w, h)."""
    if boxes01.shape[-1] == 2:
        return boxes01 * torch.as_tensor(image_sizes, dtype=boxes01.dtype, device=boxes01.device)
    return denormalize_boxes(boxes01, image_sizes)
