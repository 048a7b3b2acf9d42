"""Reward contexts of labeled prompts (the datamodule's own training batches).

Used by the ground-truth rewards (``reward=iou``, ``cider``, ``mixed``): REC rows give
``pred_boxes`` / ``gt_boxes``, caption rows ``candidates`` / ``refs``; every row ``texts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scalar.core.batch import select_rows
from scalar.rewards.cider import CiderD


def labeled_prompts(batch: Mapping[str, Any], tasks: Sequence[str]) -> dict | None:
    """The rows of ``batch`` whose task is in ``tasks`` (None when there are none)."""
    rows = [j for j, s in enumerate(batch["samples"]) if s.task in tasks]
    if not rows:
        return None
    return select_rows(dict(batch), rows) if len(rows) < len(batch["samples"]) else dict(batch)


def caption_scorer(samples: Sequence[Any]) -> CiderD:
    """CIDEr-D with document frequencies of the training caption references."""
    refs = [s.meta.get("references") or [s.target] for s in samples if s.task == "caption"]
    refs = [r for r in refs if r]
    return CiderD(refs) if refs else CiderD()


def labeled_contexts(batch: Mapping[str, Any], gen: Mapping[str, Any]):
    """``[(rows, context)]`` per task of the generated rows."""
    samples, texts = batch["samples"], gen["texts"]
    by_task: dict[str, list[int]] = {}
    for j, s in enumerate(samples):
        by_task.setdefault(s.task, []).append(j)
    tb, tbatch = batch["target_boxes"].float().cpu(), batch["target_batch"].cpu()
    out = []
    for task, rows in by_task.items():
        ctx: dict[str, Any] = {"texts": [texts[j] for j in rows]}
        if task == "rec":
            gt = [tb[tbatch == j][:1] for j in rows]
            keep = [k for k, g in enumerate(gt) if len(g)]
            rows = [rows[k] for k in keep]
            ctx = {
                "texts": [texts[j] for j in rows],
                "pred_boxes": [
                    tuple(gen["boxes"][j][0]) if gen["boxes"][j] else None for j in rows
                ],
                "gt_boxes": torch.cat([gt[k] for k in keep]) if keep else torch.zeros(0, 4),
            }
        elif task == "caption":
            ctx["candidates"] = ctx["texts"]
            ctx["refs"] = [samples[j].meta.get("references") or [samples[j].target] for j in rows]
        if rows:
            out.append((rows, ctx))
    return out
