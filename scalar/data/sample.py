"""Task samples (what the tasks build from concept chains) and the batch contract.

A ``Sample`` is plain data: text with placeholders plus pixel geometry. The Dataset
decodes the image and the collate function turns samples into a batch dict:

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
concept_levels    LongTensor[C]            chain level index (see chains.LEVELS)
concept_boxes     FloatTensor[C, 4]        xyxy in [0, 1] of the object the item describes
concept_batch     LongTensor[C]            image row of the item
concept_ground    BoolTensor[C]            the level names its object alone in the image: its
                                           box is a grounding target (dense concept grounding)
concept_input_ids LongTensor[C, L]         the level's text, tokenised, padded
concept_attention_mask LongTensor[C, L]
samples           list[Sample]             the source samples (for predictions files)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scalar.data.scene import Box, ImageInfo

TASKS = ("rec", "roc", "caption", "spatial_qa", "grounded")
PROMPT_KINDS = ("box", "point", "mask")


@dataclass
class VisualPrompt:
    """A visual prompt in pixels. ``box`` is always set (a point's box is the point)."""

    kind: str  # box | point | mask
    box: Box
    point: tuple[float, float] | None = None
    mask: Any = None  # polygons or RLE, as in the scene


@dataclass
class Sample:
    """One task instance: a prompt with ``<region>`` placeholders and an answer.

    ``target`` holds one ``<box>`` (or ``<point>``) trigger per entry of
    ``target_boxes`` in the continuous format, or the ``[x1,y1,x2,y2]`` integers
    in the textual format; ``target_boxes`` is filled in both formats.
    """

    task: str
    image: ImageInfo
    prompt: str
    target: str
    regions: list[VisualPrompt] = field(default_factory=list)
    target_boxes: list[Box] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


# Extra batch keys for generation (prompt only, LEFT-padded so generation appends on the right):
# prompt_input_ids       LongTensor[B, Tp]  prompt tokens up to and including <sep>
# prompt_attention_mask  LongTensor[B, Tp]
# (region_* keys refer to <region> tokens of prompt_input_ids and input_ids alike: a prompt
#  holds all of a sample's <region> tokens.) Each visual prompt occupies K consecutive
#  <region> tokens, K = the model's region_tokens; the collate writes them.
