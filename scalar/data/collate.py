"""Samples (with decoded images) -> the batch dict of the contract in ``scalar.core.batch``.

Row ``b`` of ``input_ids`` is ``bos prompt <sep> target eos`` with the tokenizer's own
bos (none for families without one, e.g. Qwen2) and eos; each ``<region>`` of the
prompt text becomes K consecutive ``<region>`` tokens. ``labels`` keep the target and
eos. ``prompt_input_ids`` is ``bos prompt <sep>``, left-padded for generation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from scalar.core import tokens as T
from scalar.core.boxes import box01
from scalar.data.chains import LEVEL_INDEX
from scalar.data.sample import PROMPT_KINDS, Sample, VisualPrompt

IGNORE = -100
KIND_INDEX = {k: i for i, k in enumerate(PROMPT_KINDS)}  # box 0, point 1, mask 2
POINT_RADIUS = 0.04  # point prompt disc radius, as a fraction of the grid (at least one cell)


def box_mask(box01: Sequence[float], m: int) -> torch.Tensor:
    """``[m, m]`` fraction of each grid cell covered by a [0, 1] xyxy box."""
    edges = torch.arange(m + 1, dtype=torch.float64) / m

    def cover(lo: float, hi: float) -> torch.Tensor:
        return (edges[1:].clamp(max=hi) - edges[:-1].clamp(min=lo)).clamp(min=0) * m

    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box01)
    return (cover(y1, y2)[:, None] * cover(x1, x2)[None, :]).float()


def point_mask(x01: float, y01: float, m: int) -> torch.Tensor:
    """``[m, m]`` disc of cells whose centre lies within the radius of the point."""
    r = max(1.0, POINT_RADIUS * m)
    c = torch.arange(m, dtype=torch.float32) + 0.5  # cell centres in cell units
    d2 = (c[None, :] - x01 * m) ** 2 + (c[:, None] - y01 * m) ** 2
    return (d2 <= r * r).float()


def polygon_or_rle_mask(mask, height: int, width: int, m: int) -> torch.Tensor:
    """Rasterise a polygon list or RLE at image size, then area-resize to ``[m, m]``."""
    from scalar.data.readers.coco import mask_to_array

    arr = torch.from_numpy(np.asarray(mask_to_array(mask, height, width), dtype=np.float32))
    return F.interpolate(arr[None, None], size=(m, m), mode="area")[0, 0]


def region_mask(vp: VisualPrompt, width: int, height: int, m: int) -> torch.Tensor:
    if vp.kind == "mask" and vp.mask is not None:
        return polygon_or_rle_mask(vp.mask, height, width, m)
    if vp.kind == "point":
        x, y = vp.point if vp.point is not None else vp.box[:2]
        return point_mask(x / width, y / height, m)
    return box_mask(box01(vp.box, width, height), m)


def _describe(s: Sample) -> str:
    return f"{s.task} sample of image {s.image.id} (prompt {s.prompt!r})"


class Collator:
    """Callable collate function: a list of dataset items -> batch dict (see module doc)."""

    def __init__(
        self, tokenizer, region_tokens: int = 4, mask_size: int = 16, max_length: int = 512
    ):
        self.tok, self.k, self.m, self.max_length = (
            tokenizer,
            int(region_tokens),
            int(mask_size),
            int(max_length),
        )
        ids = tokenizer.convert_tokens_to_ids
        # the family's own roles: bos may be missing (Qwen2) and may equal eos (OPT, GPT-2)
        self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.sep, self.region = ids(T.SEP), ids(T.REGION)
        self.triggers = {ids(T.BOX), ids(T.POINT)}
        unk = tokenizer.unk_token_id
        missing = [t for t in T.SCALAR_TOKENS if ids(t) in (None, unk)]
        if self.eos is None:
            missing.append("eos")
        if missing:
            raise ValueError(
                f"tokenizer lacks special tokens {missing} (use scalar.core.tokenizer.load_tokenizer)"
            )
        self.head = [] if self.bos is None else [self.bos]
        if self.k < 1:
            raise ValueError(f"region_tokens must be >= 1, got {region_tokens}")

    def encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tok(texts, add_special_tokens=False)["input_ids"]

    def _prompt_text(self, s: Sample) -> str:
        n = s.prompt.count(T.REGION)
        if n != len(s.regions):
            raise ValueError(
                f"{_describe(s)}: {n} {T.REGION} placeholders but {len(s.regions)} visual prompts"
            )
        return s.prompt.replace(T.REGION, " ".join([T.REGION] * self.k))

    @staticmethod
    def _pad(rows: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
        width = max(max((len(r) for r in rows), default=0), 1)
        out = np.full((len(rows), width), value, dtype=np.int64)
        for i, r in enumerate(rows):
            if r:
                if left:
                    out[i, width - len(r) :] = r
                else:
                    out[i, : len(r)] = r
        return torch.from_numpy(out)

    def __call__(self, items: list[dict]) -> dict:
        samples: list[Sample] = [it["sample"] for it in items]
        prompts = self.encode([self._prompt_text(s) for s in samples])
        targets = self.encode([s.target for s in samples])
        rows, labels, prompt_rows = [], [], []
        region_boxes, region_kinds, region_masks, region_batch = [], [], [], []
        target_boxes, target_batch = [], []
        for b, (s, p, t) in enumerate(zip(samples, prompts, targets)):
            w, h = s.image.width, s.image.height
            if p.count(self.region) != self.k * len(s.regions) or self.region in t:
                raise ValueError(
                    f"{_describe(s)}: {T.REGION} tokens do not match its visual prompts"
                )
            head = [*self.head, *p, self.sep]
            row = head + t + [self.eos]
            if len(row) > self.max_length:
                raise ValueError(
                    f"{_describe(s)} has {len(row)} tokens > max_length {self.max_length}; raise data.encoding.max_length"
                )
            rows.append(row)
            labels.append([IGNORE] * len(head) + t + [self.eos])
            prompt_rows.append(head)
            for vp in s.regions:
                region_boxes.append(box01(vp.box, w, h))
                region_kinds.append(KIND_INDEX[vp.kind])
                region_masks.append(region_mask(vp, w, h, self.m))
                region_batch.append(b)
            n_trig = sum(tok in self.triggers for tok in t)
            if n_trig:
                if n_trig != len(s.target_boxes):
                    raise ValueError(
                        f"{_describe(s)}: {n_trig} spatial triggers but {len(s.target_boxes)} target boxes"
                    )
                target_boxes += [box01(bx, w, h) for bx in s.target_boxes]
                target_batch += [b] * n_trig
        images, image_index = unique_images(items)
        batch = {
            "images": images,
            "image_index": image_index,
            "image_sizes": torch.tensor(
                [[s.image.width, s.image.height] for s in samples], dtype=torch.long
            ),
            "input_ids": self._pad(rows, self.pad),
            "attention_mask": self._pad([[1] * len(r) for r in rows], 0),
            "labels": self._pad(labels, IGNORE),
            "prompt_input_ids": self._pad(prompt_rows, self.pad, left=True),
            "prompt_attention_mask": self._pad([[1] * len(r) for r in prompt_rows], 0, left=True),
            "region_boxes": torch.tensor(region_boxes, dtype=torch.float32).reshape(-1, 4),
            "region_kinds": torch.tensor(region_kinds, dtype=torch.long),
            "region_masks": torch.stack(region_masks)
            if region_masks
            else torch.zeros(0, self.m, self.m),
            "region_batch": torch.tensor(region_batch, dtype=torch.long),
            "target_boxes": torch.tensor(target_boxes, dtype=torch.float32).reshape(-1, 4),
            "target_batch": torch.tensor(target_batch, dtype=torch.long),
        }
        batch.update(self._concepts(samples))
        batch.update(scene_objects(samples))
        batch["samples"] = samples
        batch["skipped"] = [x for it in items for x in it.get("skipped", [])]
        return batch

    def _concepts(self, samples: list[Sample]) -> dict:
        ids: dict[str, int] = {}
        texts, levels, boxes, rows, ground = [], [], [], [], []
        seen = set()  # one item per (image, level, text, box): rows of one image share them
        for b, s in enumerate(samples):
            image = s.image.path or f"id:{s.image.id}"
            for c in s.meta.get("concepts") or []:
                key = (image, c.level, c.text, tuple(c.box))
                if key in seen or c.level not in LEVEL_INDEX:
                    continue
                seen.add(key)
                ids.setdefault(c.text, len(ids))
                texts.append(c.text)
                levels.append(LEVEL_INDEX[c.level])
                boxes.append(box01(c.box, s.image.width, s.image.height))
                rows.append(b)
                ground.append(bool(getattr(c, "grounds", False)))
        enc = self.encode(texts)
        return {
            "concept_ids": torch.tensor([ids[t] for t in texts], dtype=torch.long),
            "concept_levels": torch.tensor(levels, dtype=torch.long),
            "concept_boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "concept_batch": torch.tensor(rows, dtype=torch.long),
            "concept_ground": torch.tensor(ground, dtype=torch.bool),
            "concept_input_ids": self._pad(enc, self.pad),
            "concept_attention_mask": self._pad([[1] * len(e) for e in enc], 0),
        }


def scene_objects(samples: list[Sample]) -> dict:
    """``object_boxes [O, 4]`` / ``object_batch [O]``: every annotated object of the row's
    image (the ``scene_boxes`` its sample carries; each row holds its own copy, so any
    selection of rows keeps the targets of its images whole), and ``scene_known [B]``:
    whether the row's sample lists its scene's objects at all."""
    boxes, rows, known = [], [], []
    for b, s in enumerate(samples):
        scene = s.meta.get("scene_boxes")
        known.append(scene is not None)
        if scene is None:
            continue
        boxes += [box01(bx, s.image.width, s.image.height) for bx in scene]
        rows += [b] * len(scene)
    return {
        "object_boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "object_batch": torch.tensor(rows, dtype=torch.long),
        "scene_known": torch.tensor(known, dtype=torch.bool),
    }


def unique_images(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [U, 3, S, S], image_index [B])``: each image once, in first-seen order.

    Items are the same image when their samples share the image path (or, without a
    path, the id) and their decoded tensors have the same shape."""
    keys: dict = {}
    images, index = [], []
    for it in items:
        info = it["sample"].image
        key = (info.path or f"id:{info.id}", tuple(it["image"].shape))
        if key not in keys:
            keys[key] = len(images)
            images.append(it["image"])
        index.append(keys[key])
    return torch.stack(images), torch.tensor(index, dtype=torch.long)


def row_lengths(collator: Collator, samples: list[Sample]) -> list[int]:
    """Length of the ``input_ids`` row each sample would give."""
    prompts = collator.encode([collator._prompt_text(s) for s in samples])
    targets = collator.encode([s.target for s in samples])
    extra = len(collator.head) + 2  # bos (if the family has one), <sep> and eos
    return [len(p) + len(t) + extra for p, t in zip(prompts, targets)]
