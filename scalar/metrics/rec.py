"""Referring expression comprehension accuracy: a hit when IoU(pred, truth) >= threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from scalar.core.boxes import aligned_iou
from scalar.metrics.base import RecordMetric, group_keys, grouped_mean


class RecAccuracy(RecordMetric):
    """Acc@``iou_threshold`` of predicted boxes, overall and per group.

    ``update(pred, target, metas=None)``: ``pred``/``target`` are aligned ``[N, 4]`` xyxy
    boxes (any common unit); a row of ``pred`` holding NaN (no box produced) is a miss.
    ``metas`` are the samples' meta dicts, grouping by ``held_out`` and ``sent_kind``.
    ``compute()`` returns ``{'acc@0.5': ..., 'seen/acc@0.5': ..., 'held_out/acc@0.5': ...,
    '<sent_kind>/acc@0.5': ...}`` as floats (``nan`` when nothing was scored).
    """

    higher_is_better = True

    def __init__(self, iou_threshold: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.iou_threshold = float(iou_threshold)
        self.name = f"acc@{self.iou_threshold:g}"

    def update(
        self, pred: Tensor, target: Tensor, metas: Sequence[dict[str, Any] | None] | None = None
    ) -> None:
        pred, target = torch.as_tensor(pred).float(), torch.as_tensor(target).float()
        if pred.shape != target.shape or (pred.ndim != 2 or pred.shape[-1] != 4):
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [N, 4]"
            )
        metas = list(metas) if metas is not None else [None] * len(pred)
        if len(metas) != len(pred):
            raise ValueError(f"{len(metas)} metas for {len(pred)} boxes")
        missing = torch.isnan(pred).any(-1)
        iou = aligned_iou(torch.nan_to_num(pred), target)
        hits = (iou >= self.iou_threshold) & ~missing
        for hit, meta in zip(hits.tolist(), metas):
            self.records.append((float(hit), group_keys(meta)))

    def compute(self) -> dict[str, float]:
        return grouped_mean(self.records, self.name)
