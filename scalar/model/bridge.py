"""Query bridge: learned queries read the patch tokens and become soft LLM tokens.

The BLIP-2 Q-Former shape without its BERT initialisation: N learned queries go through
L pre-norm blocks of self-attention, cross-attention to the (projected) patch tokens and
an MLP, then a projection to the LLM width. The output is prepended to the text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention (scaled dot product) with separate query and key/value inputs."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"bridge dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mem: Tensor) -> Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(mem).view(b, mem.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class BridgeBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to patch tokens, MLP; each residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, mem: Tensor) -> Tensor:
        y = self.norm_self(x)
        x = x + self.self_attn(y, y)
        x = x + self.cross_attn(self.norm_cross(x), mem)
        return x + self.mlp(self.norm_mlp(x))


class QueryBridge(nn.Module):
    """``patches [B, P, vision_dim] -> soft tokens [B, num_queries, out_dim]``."""

    def __init__(
        self,
        vision_dim: int,
        out_dim: int,
        num_queries: int = 16,
        dim: int = 256,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.num_queries, self.dim, self.out_dim = num_queries, dim, out_dim
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.in_proj = nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, dim))
        self.blocks = nn.ModuleList(
            BridgeBlock(dim, num_heads, mlp_ratio) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, out_dim)

    def forward(self, patches: Tensor) -> Tensor:
        dtype = self.queries.dtype
        mem = self.in_proj(patches.to(dtype))
        x = self.queries.unsqueeze(0).expand(patches.shape[0], -1, -1)
        for block in self.blocks:
            x = block(x, mem)
        return self.out_proj(self.norm(x))
