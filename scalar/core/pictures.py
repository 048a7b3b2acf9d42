"""Pictures of predicted vs true boxes a person can read, for run folders and W&B.

``draw_boxes`` upscales the image to at least ``MIN_LONG_SIDE`` pixels on its long side,
draws the boxes with ``OUTLINE`` px outlines (predicted red, true green, visual prompt
blue) and adds a panel below it: a colour legend, then the prompt, the answer and the IoU
of the prediction with the truth, wrapped to the picture's width. ``wandb_thumbnail``
makes the ``wandb.Image`` (with W&B's own box overlays) of a prediction record.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

PRED, TRUE, GIVEN = (230, 30, 30), (30, 200, 60), (40, 110, 240)
LEGEND = {"pred": (PRED, "predicted"), "true": (TRUE, "true"), "given": (GIVEN, "visual prompt")}
MIN_LONG_SIDE = 512  # pictures are upscaled to at least this many pixels on the long side
OUTLINE = 3  # box outline width in pixels of the picture
FONT_PX = 18  # panel text height
PANEL_BG, PANEL_FG, RULE = (232, 235, 240), (15, 15, 15), (70, 70, 70)  # panel colours
RULE_PX = 2  # the line between the image and the panel
PAD = 8  # panel margins
SPECIAL = ("<s>", "</s>", "<pad>", "<sep>")  # tokens not worth showing in the panel text


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


@lru_cache(maxsize=4)
def font(size: int = FONT_PX) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font at ``size`` px (its small bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no size argument
        return ImageFont.load_default()


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes (any common scale)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def iou_text(pred01: Sequence, true01: Sequence) -> str | None:
    """``IoU 0.62`` for one true box (the first prediction's); with several true boxes, the
    best IoU of any prediction with each; ``None`` without truth."""
    if not true01:
        return None
    if not pred01:
        return "IoU 0.00 (no box predicted)"
    if len(true01) == 1:
        return f"IoU {box_iou(pred01[0], true01[0]):.2f}"
    best = [max(box_iou(p, t) for p in pred01) for t in true01]
    return "IoU per true box (best match): " + ", ".join(f"{v:.2f}" for v in best)


def clean_text(text: str) -> str:
    for token in SPECIAL:
        text = text.replace(token, " ")
    return " ".join(text.split())


def panel_lines(prompt=None, answer=None, iou=None, width_chars: int = 60) -> list[str]:
    """The panel's text lines (legend excluded), wrapped to ``width_chars``."""
    lines = []
    for label, value in (("prompt", prompt), ("answer", answer), (None, iou)):
        if value is None:
            continue
        text = clean_text(str(value)) or "(empty)"
        text = f"{label}: {text}" if label else text
        lines += textwrap.wrap(text, width_chars, max_lines=4, placeholder=" ...") or [""]
    return lines


def upscale(image: Image.Image, long_side: int = MIN_LONG_SIDE) -> Image.Image:
    image = image.convert("RGB")
    w, h = image.size
    if max(w, h) >= long_side:
        return image.copy()
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def draw_boxes(
    image: Image.Image,
    pred01: Sequence[Sequence[float]],
    true01: Sequence[Sequence[float]] = (),
    caption: str | None = None,
    *,
    prompt: str | None = None,
    answer: str | None = None,
    given01: Sequence[Sequence[float]] = (),
    iou: str | None | bool = True,
) -> Image.Image:
    """A readable picture of ``[0, 1]`` xyxy boxes on ``image`` (see the module docstring).

    ``iou=True`` writes the IoU computed from the boxes (when there is truth), a string
    writes that text, ``None``/``False`` none; ``caption`` is an extra panel line.
    """
    pic = upscale(image)
    w, h = pic.size
    draw = ImageDraw.Draw(pic)
    for boxes, colour in ((given01, GIVEN), (true01, TRUE), (pred01, PRED)):
        for b in boxes:
            x1, y1, x2, y2 = (float(b[0]) * w, float(b[1]) * h, float(b[2]) * w, float(b[3]) * h)
            x1, x2 = sorted((round(x1), round(x2)))
            y1, y2 = sorted((round(y1), round(y2)))
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=OUTLINE)
    shown = [k for k, boxes in (("pred", pred01), ("true", true01), ("given", given01)) if boxes]
    shown = shown or ["pred"]
    text_iou = iou_text(pred01, true01) if iou is True else (iou or None)
    f = font()
    char_px = max(1.0, f.getlength("abcdefghijklmnopqrstuvwxyz") / 26)
    lines = panel_lines(prompt, answer, text_iou, max(20, int((w - 2 * PAD) / char_px)))
    lines += [caption] if caption else []
    line_h = FONT_PX + 6
    out = Image.new("RGB", (w, h + PAD * 2 + line_h * (1 + len(lines))), PANEL_BG)
    out.paste(pic, (0, 0))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, h, w - 1, h + RULE_PX - 1], fill=RULE)
    x, y = PAD, h + PAD
    for key in shown:  # legend: a swatch per colour shown, then its name
        colour, name = LEGEND[key]
        draw.rectangle([x, y + 3, x + FONT_PX - 4, y + FONT_PX - 1], fill=colour)
        x += FONT_PX + 2
        draw.text((x, y), name, fill=PANEL_FG, font=f)
        x += int(f.getlength(name)) + 3 * PAD
    for k, line in enumerate(lines, 1):
        draw.text((PAD, y + k * line_h), line, fill=PANEL_FG, font=f)
    return out


def same_size(images: Sequence[Image.Image]) -> list[Image.Image]:
    """The pictures padded (right and bottom, panel colour) to a common size: W&B shows a
    list of images logged under one key correctly only when their sizes match."""
    if not images:
        return []
    size = (max(i.size[0] for i in images), max(i.size[1] for i in images))
    out = []
    for im in images:
        if im.size == size:
            out.append(im)
            continue
        padded = Image.new("RGB", size, PANEL_BG)
        padded.paste(im, (0, 0))
        out.append(padded)
    return out


def wandb_boxes(pred01, true01, caption: str = "", given01=()) -> dict:
    """The ``boxes=`` argument of ``wandb.Image`` for predicted, true and prompt boxes."""

    def data(boxes, class_id, text):
        return [
            {
                "position": {
                    "minX": float(b[0]),
                    "minY": float(b[1]),
                    "maxX": float(b[2]),
                    "maxY": float(b[3]),
                },
                "class_id": class_id,
                "box_caption": text,
            }
            for b in boxes
        ]

    labels = {0: "predicted", 1: "true", 2: "visual prompt"}
    out = {
        "predictions": {"box_data": data(pred01, 0, caption[:40]), "class_labels": labels},
        "ground_truth": {"box_data": data(true01, 1, "true"), "class_labels": labels},
    }
    if given01:
        out["visual_prompt"] = {"box_data": data(given01, 2, "prompt"), "class_labels": labels}
    return out


def record_boxes01(record: dict) -> tuple[list, list, list]:
    """Predicted, true and visual-prompt boxes of a prediction record, in ``[0, 1]``."""
    w, h = (float(v) for v in record["image_size"])
    truth = record.get("truth") or {}
    true = [truth["box"]] if truth.get("box") else [o["box"] for o in truth.get("objects", [])]

    def norm(boxes):
        return [[b[0] / w, b[1] / h, b[2] / w, b[3] / h] for b in boxes]

    regions = [r["box"] for r in record.get("regions") or []]
    return norm(record.get("boxes") or []), norm(true), norm(regions)


def wandb_thumbnail(record: dict, long_side: int = 256):
    """A ``wandb.Image`` of the record's image (long side ``long_side``) carrying its
    predicted / true / prompt boxes; ``None`` when the image file is not readable."""
    import wandb

    path = record.get("image")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, TypeError, ValueError):
        return None
    im.thumbnail((long_side, long_side))
    pred, true, given = record_boxes01(record)
    boxes = wandb_boxes(pred, true, clean_text(str(record.get("output", ""))), given)
    return wandb.Image(im, boxes=boxes, caption=clean_text(str(record.get("prompt", "")))[:80])
