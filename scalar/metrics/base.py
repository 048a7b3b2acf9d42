"""A torchmetrics base whose state is a list of Python records, gathered as objects in DDP."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric


class RecordMetric(Metric):
    """Keeps ``self.records`` (any picklable Python values); DDP sync uses ``all_gather_object``.

    Grouped metrics (per split, per sentence kind) and corpus-level scores (CIDEr needs
    every reference to weigh n-grams) cannot be reduced from fixed tensors, so they keep
    records and score them in ``compute``.
    """

    full_state_update = False

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_state("records", default=[], dist_reduce_fx=None)

    def _sync_dist(self, dist_sync_fn=None, process_group=None) -> None:  # noqa: ARG002
        group = process_group or self.process_group
        world = torch.distributed.get_world_size(group)
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, list(self.records), group=group)
        self.records = [r for part in parts for r in part]


def group_keys(meta: dict[str, Any] | None) -> tuple[str, ...]:
    """Group names a sample counts in besides the total.

    ``held_out`` (bool) gives ``held_out`` or ``seen``; ``sent_kind`` (REC sentence kind)
    and ``prompt_kind`` (box / point / mask visual prompt) give their value.
    """
    meta = meta or {}
    keys: list[str] = []
    if "held_out" in meta and meta["held_out"] is not None:
        keys.append("held_out" if bool(meta["held_out"]) else "seen")
    for field in ("sent_kind", "prompt_kind"):
        if meta.get(field):
            keys.append(str(meta[field]))
    return tuple(keys)
