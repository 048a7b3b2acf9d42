"""Task samples: what the tasks build from concept chains.

A ``Sample`` is plain data: text with placeholders plus pixel geometry. The Dataset
decodes the image and the collate function turns samples into a batch dict that follows
the batch contract of :mod:`scalar.core.batch`.
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
