"""The semantic score of SPR: CLIP similarity of a region crop and its description.

:class:`ClipScorer` builds an open_clip model by name and loads its weights from a local
file (a state dict, or a checkpoint with one under ``state_dict``); nothing is downloaded.
``embed(crops, texts)`` gives L2-normalised image and text embeddings ``[B, D]`` (the
model's own preprocessing and tokenizer); ``semantic_reward`` turns their cosine into a
score. ``config_dir``: a folder of open_clip model configs (``*.json``) to register first,
for models open_clip does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

__all__ = ["ClipScorer"]


class ClipScorer:
    """``model_name``: an open_clip model name; ``weights``: path of its weights file;
    ``config_dir``: extra open_clip configs; ``device``: where it runs."""

    def __init__(self, model_name: str, weights: str, config_dir: str | None = None,
                 device: str = "cpu"):  # fmt: skip
        import open_clip

        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise ValueError(f"CLIP weights file not found: {path} (set reward.clip.weights to a "
                             "local open_clip state dict, or rl.prompts.semantic=own)")  # fmt: skip
        if config_dir:
            open_clip.add_model_config(str(config_dir))
        if model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model_name!r} (config_dir={config_dir})")
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
        self.name, self.weights, self.device = model_name, str(path), torch.device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(model_name)

    def to(self, device) -> ClipScorer:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def embed(self, crops: Sequence[Image.Image], texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``(image [B, D], text [B, D])`` L2-normalised embeddings (float32, CPU)."""
        if len(crops) != len(texts):
            raise ValueError(f"{len(crops)} crops for {len(texts)} texts")
        if not crops:
            return torch.zeros(0, 1), torch.zeros(0, 1)
        pix = torch.stack([self.preprocess(c.convert("RGB")) for c in crops]).to(self.device)
        tok = self.tokenizer(list(texts)).to(self.device)
        img = self.model.encode_image(pix).float()
        txt = self.model.encode_text(tok).float()
        norm = lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # noqa: E731
        return norm(img).cpu(), norm(txt).cpu()


def crop(image: Image.Image, box: Sequence[float], frame: Sequence[float]) -> Image.Image:
    """The ``box`` (pixels of an image of size ``frame = (w, h)``) cut from ``image`` (which
    may be a resized copy), at least one pixel wide and high."""
    sx, sy = image.width / float(frame[0]), image.height / float(frame[1])
    x0, y0 = int(max(0, box[0] * sx)), int(max(0, box[1] * sy))
    x1 = int(min(image.width, max(x0 + 1, round(box[2] * sx))))
    y1 = int(min(image.height, max(y0 + 1, round(box[3] * sy))))
    return image.crop((x0, y0, x1, y1))
