"""The batch contract, and row selection on batches that follow it.

The collate function (:class:`scalar.data.collate.Collator`) turns task samples
(:class:`scalar.data.sample.Sample`) into a batch dict; every model, loss, metric and stage
reads batches through these keys (B rows, U distinct images, pixel boxes of the original
image made relative with :func:`scalar.core.boxes.box01`):

images            FloatTensor[U, 3, S, S]  the batch's distinct images (U <= B), resized to the
                                           tower's size, normalised with its mean/std
image_index       LongTensor[B]            image (row of ``images``) of each row; rows of one
                                           image share one pass of the vision tower
image_sizes       LongTensor[B, 2]         (width, height) of the original image in pixels
input_ids         LongTensor[B, T]         prompt + answer tokens (right-padded with <pad>)
attention_mask    LongTensor[B, T]         1 on real tokens
labels            LongTensor[B, T]         answer tokens, -100 on prompt and padding
region_boxes      FloatTensor[R, 4]        visual prompts, xyxy normalised to [0, 1], one per
                                           <region> token of input_ids in row-major order
region_kinds      LongTensor[R]            0 box, 1 point, 2 mask
region_masks      FloatTensor[R, M, M]     prompt mask rasterised on an MxM grid over the image
                                           (box: ones inside the box; point: a small disc)
region_batch      LongTensor[R]            row of input_ids each prompt belongs to
target_boxes      FloatTensor[N, 4]        xyxy in [0, 1], one per <box>/<point> trigger of
                                           labels in row-major order (points as x, y, x, y)
target_batch      LongTensor[N]            row each target belongs to
concept_ids       LongTensor[C]            concept (category/phrase) id of each chain item;
                                           equal ids are positives of each other
concept_levels    LongTensor[C]            chain level (scalar.data.chains.LEVELS)
concept_boxes     FloatTensor[C, 4]        xyxy in [0, 1] of the object the item describes
concept_batch     LongTensor[C]            image row of the item
concept_ground    BoolTensor[C]            the level names its object alone in the image: its
                                           box is a grounding target (dense concept grounding)
concept_input_ids LongTensor[C, L]         the level's text, tokenised, padded
concept_attention_mask LongTensor[C, L]
object_boxes      FloatTensor[O, 4]        xyxy in [0, 1]: every annotated object of the row's
                                           image (the objectness target; each row of an
                                           image holds its own copy)
object_batch      LongTensor[O]            row holding each object box
scene_known       BoolTensor[B]            the row's sample lists its image's objects
                                           (annotated scenes; False for unlabeled images)
samples           list[Sample]             the source samples (for predictions files)

Extra batch keys for generation (prompt only, LEFT-padded so generation appends on the right):
prompt_input_ids       LongTensor[B, Tp]  prompt tokens up to and including <sep>
prompt_attention_mask  LongTensor[B, Tp]
(region_* keys refer to <region> tokens of prompt_input_ids and input_ids alike: a prompt
 holds all of a sample's <region> tokens.) Each visual prompt occupies K consecutive
 <region> tokens, K = the model's region_tokens; the collate writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

# item tensors whose rows belong to a batch row through ``<group>_batch``
ITEM_GROUPS = ("region", "target", "concept", "object")


def select_rows(batch: dict[str, Any], rows: Sequence[int]) -> dict[str, Any]:
    """A batch made of rows ``rows`` (in that order) of ``batch``.

    Per-row tensors (leading size B) are indexed; ``region_*``, ``target_*``,
    ``concept_*`` and ``object_*`` items are kept when their ``*_batch`` row is selected
    (order kept) and their ``*_batch`` is renumbered; ``samples`` is indexed like the rows.
    """
    rows = [int(r) for r in rows]
    size = len(batch["input_ids"])
    if any(r < 0 or r >= size for r in rows):
        raise IndexError(f"rows {rows} out of range for a batch of {size}")
    out: dict[str, Any] = {}
    index = torch.tensor(rows, dtype=torch.long)
    remap = torch.full((size,), -1, dtype=torch.long)
    remap[index] = torch.arange(len(rows))
    keep: dict[str, Tensor] = {}
    for group in ITEM_GROUPS:
        owner = batch.get(f"{group}_batch")
        if isinstance(owner, Tensor):
            sel = remap.to(owner.device)[owner]
            keep[group] = sel
    for key, value in batch.items():
        if key in ("images", "image_index") and isinstance(batch.get("image_index"), Tensor):
            continue  # below: the selected rows' images, renumbered
        group = key.split("_", 1)[0]
        if group in keep and isinstance(value, Tensor):
            sel = keep[group]
            mask = sel >= 0
            if key == f"{group}_batch":
                # stable order by new row, then original order
                order = _stable_order(sel[mask])
                out[key] = sel[mask][order]
            else:
                order = _stable_order(sel[mask])
                out[key] = value[mask][order]
        elif isinstance(value, Tensor) and value.ndim > 0 and len(value) == size:
            out[key] = value[index.to(value.device)]
        elif isinstance(value, list) and len(value) == size:
            out[key] = [value[r] for r in rows]
        else:
            out[key] = value
    if isinstance(batch.get("image_index"), Tensor):
        used = batch["image_index"][index.to(batch["image_index"].device)]
        kept, new_index = torch.unique(used, return_inverse=True)
        out["images"] = batch["images"][kept.to(batch["images"].device)]
        out["image_index"] = new_index
    return out


def row_image(batch: dict[str, Any], row: int) -> Tensor:
    """The (normalised) image tensor of batch row ``row``."""
    index = batch.get("image_index")
    return batch["images"][int(index[row]) if index is not None else row]


def _stable_order(new_rows: Tensor) -> Tensor:
    """Permutation sorting items by their new row, keeping the original order within a row."""
    if len(new_rows) == 0:
        return torch.zeros(0, dtype=torch.long, device=new_rows.device)
    return torch.sort(new_rows, stable=True).indices


def rows_by_task(samples: Sequence[Any], tasks: Sequence[str]) -> dict[str, list[int]]:
    """Row indices of each task in ``tasks`` present among ``samples``."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        task = getattr(s, "task", None) or (s.meta.get("task") if hasattr(s, "meta") else None)
        if task in tasks:
            out.setdefault(task, []).append(i)
    return out
