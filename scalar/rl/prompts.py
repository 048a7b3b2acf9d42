"""Prompt images for the RL stage: images of a split with their annotations withheld.

Each item is an image with, where the corpus has it, its weak image-level text
(``captions``; a scene's objects, refs and boxes are never read). Region proposals are the
model's own (``model``: filled per step by :mod:`scalar.rl.model_proposals`, the default)
or, as options, image processing: connected components of non-background pixels
(``components``) or random boxes (``random``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from torch.utils.data import Dataset

from scalar.data.dataset import load_image
from scalar.data.resume import ResumableLoader
from scalar.data.scene import Scene

PROPOSALS = ("model", "components", "random")


def background_colour(image: np.ndarray) -> np.ndarray:
    """The most frequent colour of the image border (``image [H, W, 3] uint8``)."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    colours, counts = np.unique(border.reshape(-1, image.shape[-1]), axis=0, return_counts=True)
    return colours[counts.argmax()]


def component_proposals(
    image: np.ndarray, min_area: int = 16, max_proposals: int = 8, tolerance: int = 24
) -> list[tuple[tuple[float, float, float, float], dict]]:
    """Connected components of pixels differing from the border colour, largest first.

    Returns ``(box_px xyxy, rle)`` pairs; components under ``min_area`` pixels are dropped.
    No annotation is used: this is class-agnostic foreground grouping.
    """
    img = np.asarray(image)
    bg = background_colour(img).astype(np.int16)
    fg = np.abs(img.astype(np.int16) - bg).max(axis=-1) > tolerance
    labels, n = ndimage.label(fg)
    if n == 0:
        return []
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    out = []
    for k in np.argsort(-areas, kind="stable")[:max_proposals]:
        if areas[k] < min_area:
            break
        comp = labels == k + 1
        ys, xs = np.nonzero(comp)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        rle = mask_utils.encode(np.asfortranarray(comp.astype(np.uint8)))
        out.append((box, rle))
    return out


def random_boxes(
    width: int, height: int, n: int, rng: np.random.Generator, min_frac=0.15, max_frac=0.6
) -> list[tuple[float, float, float, float]]:
    """``n`` random pixel boxes whose sides are ``min_frac..max_frac`` of the image's."""
    out = []
    for _ in range(n):
        w = rng.uniform(min_frac, max_frac) * width
        h = rng.uniform(min_frac, max_frac) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        out.append((float(x), float(y), float(x + w), float(y + h)))
    return out


class PromptImages(Dataset):
    """Items ``{"scene", "image", "proposals", "masks", "captions", "expressions"}`` of a
    list of scenes.

    ``proposals``: pixel boxes (empty with ``model``: the rollout fills them); ``masks``: an
    RLE per proposal (``None`` for random boxes); ``expressions``: empty (the rollout's).
    A scene whose image cannot be decoded is replaced by the next one (like the task data).
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        proposals: str = "model",
        max_proposals: int = 8,
        min_area: int = 16,
        seed: int = 0,
    ):
        if proposals not in PROPOSALS:
            raise ValueError(f"proposals must be one of {PROPOSALS}, got {proposals!r}")
        if not scenes:
            raise ValueError("no images to build RL prompts from")
        self.scenes = list(scenes)
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        self.kind, self.max_proposals, self.min_area = proposals, max_proposals, min_area
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.scenes)

    def _item(self, index: int) -> dict:
        scene = self.scenes[index]
        path = scene.image.path
        if not Path(path).is_file():
            raise FileNotFoundError(f"image not found: {path}")
        with Image.open(path) as im:
            raw = np.asarray(im.convert("RGB"))
        h, w = raw.shape[:2]
        if self.kind == "components":
            found = component_proposals(raw, self.min_area, self.max_proposals)
            boxes, masks = [b for b, _ in found], [m for _, m in found]
        else:
            boxes, masks = [], []
        if not boxes and self.kind != "model":  # nothing stands out: random boxes
            rng = np.random.default_rng((self.seed, index))
            boxes = random_boxes(w, h, self.max_proposals, rng)
            masks = [None] * len(boxes)
        captions = list(scene.meta.get("captions", []))  # weak image-level text, if any
        image = load_image(path, self.image_size, self.mean, self.std)
        return {"scene": scene, "image": image, "proposals": boxes, "masks": masks,
                "captions": captions, "expressions": [], "size": (w, h)}  # fmt: skip

    def __getitem__(self, index: int) -> dict:
        for k in range(len(self.scenes)):
            try:
                return self._item((index + k) % len(self.scenes))
            except (OSError, ValueError, SyntaxError):
                continue
        raise RuntimeError(f"none of the {len(self.scenes)} prompt images can be read")


def collate_items(items: list[dict]) -> dict:
    """Keep items as a list (prompts are built per step by the rollout)."""
    return {"items": items, "images": torch.stack([it["image"] for it in items])}


def prompt_loader(
    datamodule, split: str, batch_size: int, proposals: str = "model",
    max_proposals: int = 8, seed: int = 0,
) -> ResumableLoader:  # fmt: skip
    """A shuffled, resumable loader over the images of ``datamodule.corpora[split]``, in
    the order of a shuffled ``DataLoader`` seeded with ``seed`` (that of earlier runs)."""
    corpora = datamodule.read_corpora()
    if split not in corpora:
        raise ValueError(
            f"rl.prompts.split={split!r} is not a data split (splits: {sorted(corpora)})"
        )
    dataset = PromptImages(
        corpora[split].scenes, datamodule.image_size, datamodule.mean, datamodule.std,
        proposals, max_proposals, seed=seed,
    )  # fmt: skip
    return ResumableLoader(dataset, batch_size, collate_fn=collate_items, shuffle=True, seed=seed,
                           order="dataloader")  # fmt: skip
