"""Vision tower: an open_clip image tower by name, returning patch tokens and their grid.

The tower is built with ``open_clip.create_model`` (our own configs in ``configs/`` are
registered with open_clip first) and cut after ``feature_layer``: the feature map of that
block becomes ``[B, h*w, D]`` row-major patch tokens (class/prefix tokens dropped). Blocks
after it, the pooling head and the text tower are removed. Convolutional towers have no
positions of their own, so a 2-D position embedding is added to their patch tokens.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from scalar.model.spatial import sincos_2d

CONFIG_DIR = Path(__file__).parent / "configs"
_registered = False


def register_configs() -> None:
    """Make our model configs (``configs/*.json``) known to open_clip's factory."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def _kind(visual: nn.Module) -> str:
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer

    if isinstance(visual, ModifiedResNet):
        return "resnet"
    if isinstance(visual, VisionTransformer):
        return "vit"
    if isinstance(visual, TimmModel):
        return "timm"
    raise ValueError(f"unsupported open_clip vision tower {type(visual).__name__}")


def _num_blocks(visual: nn.Module, kind: str) -> int:
    if kind == "resnet":
        return 5  # stem, layer1 .. layer4
    if kind == "vit":
        return len(visual.transformer.resblocks)
    return len(visual.trunk.blocks)


class VisionTower(nn.Module):
    """``images [B, 3, S, S] -> (patches [B, h*w, D], (h, w))``.

    ``feature_layer`` indexes the tower's blocks (negative from the end): for ResNets
    0 = stem, 1..4 = layer1..layer4 (``2`` gives an 8x8 grid at 64 px); for ViTs the
    transformer block (``-2`` = penultimate, as in BLIP-2 / LLaVA). ``pretrained`` is a
    local open_clip checkpoint file or ``None`` (random init; an error when
    ``require_pretrained``). ``pos_embed``: ``auto`` (sincos for conv towers, none for
    ViTs), ``sincos``, ``learned`` or ``none``. ``mean``/``std`` override the
    preprocessing statistics recorded with the tower.
    """

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        image_size: int | None = None,
        freeze: bool = True,
        feature_layer: int = -1,
        pos_embed: str = "auto",
        require_pretrained: bool = False,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ):
        super().__init__()
        import open_clip

        register_configs()
        device = torch.empty(0).device  # `with torch.device(...)` too (get_default_device: 2.6+)
        if pretrained is not None:
            if not Path(pretrained).is_file():
                raise FileNotFoundError(
                    f"vision tower weights not found: {pretrained} (set model.vision.pretrained "
                    "to a local open_clip checkpoint file)"
                )
        elif require_pretrained and device.type != "meta":
            raise FileNotFoundError(
                f"vision tower {name!r} needs pretrained weights: set model.vision.pretrained "
                "to a local open_clip checkpoint file (or model.vision.require_pretrained=false "
                "to train on a random tower)"
            )
        if open_clip.get_model_config(name) is None:
            raise ValueError(
                f"unknown open_clip model {name!r} (set model.vision.name; known: "
                f"{', '.join(open_clip.list_models()[:8])}, ...)"
            )
        force_pp = {k: tuple(v) for k, v in (("mean", mean), ("std", std)) if v is not None}
        clip = open_clip.create_model(
            name,
            pretrained=None,  # loaded below: a file that does not fit is one clear error
            device=device,
            force_image_size=image_size,
            force_preprocess_cfg=force_pp or None,
        )
        if pretrained is not None:
            from scalar.model.vision_weights import load_tower_weights

            load_tower_weights(clip, pretrained, name)
        visual = clip.visual
        del clip  # keep only the image tower
        self.name, self.kind = name, _kind(visual)
        n = _num_blocks(visual, self.kind)
        if not -n <= feature_layer < n:
            raise ValueError(f"feature_layer {feature_layer} out of range for {name} ({n} blocks)")
        self.feature_layer = feature_layer % n
        self._prune(visual)
        self.visual = visual
        pp = visual.preprocess_cfg
        size = pp["size"]
        self.image_size = size if isinstance(size, int) else tuple(size)
        if not isinstance(self.image_size, int) and self.image_size[0] == self.image_size[1]:
            self.image_size = int(self.image_size[0])
        self.mean, self.std = tuple(pp["mean"]), tuple(pp["std"])
        self.dim, self.grid_hw = self._probe_shape()
        if pos_embed == "auto":
            pos_embed = "sincos" if self.kind == "resnet" else "none"
        if pos_embed not in ("sincos", "learned", "none"):
            raise ValueError(f"pos_embed must be auto, sincos, learned or none, got {pos_embed!r}")
        self.pos_embed_kind = pos_embed
        self.pos_embed = None
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.randn(math.prod(self.grid_hw), self.dim) * 0.02)
        self.frozen = False
        self.set_frozen(freeze)

    def _prune(self, visual: nn.Module) -> None:
        idx = self.feature_layer
        if self.kind == "resnet":
            for i, name in enumerate(["layer1", "layer2", "layer3", "layer4"], start=1):
                if i > idx:
                    setattr(visual, name, nn.Identity())
            visual.attnpool = nn.Identity()
        elif self.kind == "vit":
            visual.prune_intermediate_layers([idx], prune_norm=True, prune_head=True)
        else:
            visual.trunk.prune_intermediate_layers([idx], prune_norm=True, prune_head=True)
            visual.head = nn.Identity()

    def _probe_shape(self) -> tuple[int, tuple[int, int]]:
        """Channels and grid of the feature map, from the tower's geometry (no forward pass)."""
        v, size = self.visual, self.image_size
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if self.kind == "resnet":
            width = v.conv3.out_channels
            stride = 4 * 2 ** max(self.feature_layer - 1, 0)
            dim = width if self.feature_layer == 0 else width * 4 * 2 ** (self.feature_layer - 1)
        elif self.kind == "vit":
            stride, dim = v.patch_size[0], v.conv1.out_channels
        else:
            stride, dim = v.trunk.patch_embed.patch_size[0], v.trunk.embed_dim
        return dim, (hw[0] // stride, hw[1] // stride)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze (no grads, eval mode kept) or unfreeze the tower."""
        self.frozen = bool(frozen)
        for p in self.parameters():
            p.requires_grad_(not self.frozen)
        self.visual.train(self.training and not self.frozen)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.visual.eval()  # frozen towers keep eval behaviour (BatchNorm stats, dropout)
        return self

    def check_preprocess(self, image_size, mean, std) -> None:
        """Raise ValueError when the data layer's preprocessing differs from the tower's."""
        want = self.image_size if not isinstance(self.image_size, int) else (self.image_size,) * 2
        got = image_size if not isinstance(image_size, int) else (image_size,) * 2
        ok = tuple(int(x) for x in got) == tuple(want)
        ok = ok and all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(mean, self.mean))
        ok = ok and all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(std, self.std))
        if not ok or len(mean) != 3 or len(std) != 3:
            raise ValueError(
                f"image preprocessing mismatch: vision tower {self.name!r} expects "
                f"size={self.image_size} mean={self.mean} std={self.std}, the data layer uses "
                f"size={image_size} mean={tuple(mean)} std={tuple(std)}"
            )

    def forward(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        dtype = next(self.visual.parameters()).dtype
        out = self.visual.forward_intermediates(
            images.to(dtype),
            indices=[self.feature_layer],
            stop_early=True,
            intermediates_only=True,
            output_fmt="NCHW",
        )
        fmap = out["image_intermediates"][0]  # [B, D, h, w]
        h, w = fmap.shape[-2:]
        tokens = fmap.flatten(2).transpose(1, 2)
        if self.pos_embed_kind == "sincos":
            tokens = tokens + sincos_2d((h, w), self.dim, tokens.device).to(tokens.dtype)
        elif self.pos_embed is not None:
            if self.pos_embed.shape[0] != h * w:
                raise ValueError(
                    f"learned position embedding is for a {self.grid_hw} grid, got {(h, w)}"
                )
            tokens = tokens + self.pos_embed.to(tokens.dtype)
        return tokens, (int(h), int(w))
