"""Pictures of predicted (red) vs true (green) boxes, for run folders and W&B."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw

PRED, TRUE = (230, 30, 30), (30, 200, 60)


def image_for_sample(sample, image: torch.Tensor | None, mean=None, std=None) -> Image.Image:
    """The sample's original image from disk, else the batch tensor de-normalised."""
    path = getattr(getattr(sample, "image", None), "path", None)
    if path and Path(path).is_file():
        with Image.open(path) as im:
            return im.convert("RGB")
    if image is None:
        raise FileNotFoundError(f"image not found: {path}")
    x = image.detach().float().cpu()
    if mean is not None and std is not None:
        x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(x)


def draw_boxes(
    image: Image.Image,
    pred01: Sequence[Sequence[float]],
    true01: Sequence[Sequence[float]],
    caption: str | None = None,
) -> Image.Image:
    """Copy of ``image`` with ``[0, 1]`` xyxy boxes drawn: predictions red, truth green."""
    out = image.convert("RGB").copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    width = max(1, round(min(w, h) / 100))
    for boxes, colour in ((true01, TRUE), (pred01, PRED)):
        for b in boxes:
            x1, y1, x2, y2 = (float(b[0]) * w, float(b[1]) * h, float(b[2]) * w, float(b[3]) * h)
            draw.rectangle(
                [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=colour, width=width
            )
    if caption:
        draw.text((2, 2), caption[:80], fill=(255, 255, 255))
    return out


def wandb_boxes(pred01, true01, caption: str = "") -> dict:
    """The ``boxes=`` argument of ``wandb.Image`` for predicted and true boxes."""

    def data(boxes, label):
        return [
            {
                "position": {
                    "minX": float(b[0]),
                    "minY": float(b[1]),
                    "maxX": float(b[2]),
                    "maxY": float(b[3]),
                },
                "class_id": 0 if label == "pred" else 1,
                "box_caption": caption[:40] if label == "pred" else "truth",
            }
            for b in boxes
        ]

    labels = {0: "pred", 1: "truth"}
    return {
        "predictions": {"box_data": data(pred01, "pred"), "class_labels": labels},
        "ground_truth": {"box_data": data(true01, "truth"), "class_labels": labels},
    }
