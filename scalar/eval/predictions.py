"""Per-sample prediction records and the ``predictions/<task>_<split>.jsonl`` writer.

One JSON object per line and sample: ``id`` (readable, ending in ``#<index>``), ``index``
(position in the split's sample list), ``split``, ``task``, ``image`` (path), ``image_id``, ``image_size`` (width,
height), ``prompt`` (as given to the model, ``<region>`` marks a visual prompt),
``regions`` (the visual prompts, pixels), ``output`` (generated text), ``boxes``
(predicted boxes, xyxy pixels of the original image, in order of appearance),
``box_formats`` (``decoder`` | ``text`` per box), ``truth`` (task-specific ground truth)
and ``score`` (the sample's score: ``iou``/``correct`` for REC, ``correct`` for
classification and QA, ``tp``/matches for grounded description, caption scores).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from scalar.core.io import write_jsonl
from scalar.data.sample import Sample


def sample_id(sample: Sample) -> str:
    """``task:image/ref-or-object-or-region`` (plus the question type for spatial QA)."""
    meta = sample.meta or {}
    if "id" in meta:
        return str(meta["id"])
    item = next((meta[k] for k in ("ref_id", "object_id", "region_id") if k in meta), None)
    out = f"{sample.task}:{sample.image.id}" + (f"/{item}" if item is not None else "")
    if meta.get("prompt_kind"):
        out += f"/{meta['prompt_kind']}"
    return out


def true_objects(sample: Sample) -> list[tuple[str, tuple[float, ...]]]:
    """``[(category, pixel box), ...]`` of a grounded-description sample.

    Categories come from the ``category`` level of each object's concept chain (in the
    order of ``target_boxes``); without them, from the last word of each target phrase.
    """
    boxes = [tuple(float(v) for v in b) for b in sample.target_boxes]
    levels = [c for c in sample.meta.get("concepts") or [] if c.level == "category"]
    if len(levels) == len(boxes):
        names = [_strip_article(c.text) for c in levels]
    else:
        from scalar.metrics.grounding import mentions

        names = [(p.split() or [""])[-1] for p, _ in mentions(sample.target, boxes)]
    return list(zip(names, boxes))


def _strip_article(text: str) -> str:
    first, _, rest = text.strip().partition(" ")
    return rest if first.lower() in ("a", "an", "the") and rest else text.strip()


def _truth(sample: Sample) -> dict[str, Any]:
    meta = sample.meta or {}
    if sample.task == "rec":
        return {"box": list(sample.target_boxes[0]), "target": sample.target}
    if sample.task == "roc":
        return {"answers": meta.get("answers") or [sample.target]}
    if sample.task == "caption":
        return {"references": meta.get("references") or [sample.target]}
    if sample.task == "spatial_qa":
        keys = ("question_type", "answer_type", "value", "unit")
        return {"answer": sample.target, **{k: meta.get(k) for k in keys}}
    if sample.task == "grounded":
        objs = true_objects(sample)
        return {
            "target": sample.target,
            "objects": [{"category": c, "box": list(b)} for c, b in objs],
        }
    return {"target": sample.target}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k != "groups"}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def prediction_record(
    split: str, sample: Sample, index: int, gen: dict, row: int, score: dict[str, Any]
) -> dict[str, Any]:
    """The record of one sample (see the module docstring)."""
    meta = sample.meta or {}
    regions = [
        {"kind": vp.kind, "box": list(vp.box), **({"point": list(vp.point)} if vp.point else {})}
        for vp in sample.regions
    ]
    extra = {
        k: meta[k]
        for k in ("held_out", "sent_kind", "prompt_kind", "source")
        if meta.get(k) is not None
    }
    return _plain({
        "id": f"{sample_id(sample)}#{index}",
        "index": int(index),
        "split": split,
        "task": sample.task,
        "image": sample.image.path,
        "image_id": sample.image.id,
        "image_size": [sample.image.width, sample.image.height],
        "prompt": sample.prompt,
        "regions": regions,
        "output": gen["texts"][row],
        "boxes": [list(b) for b in gen["boxes_px"][row]],
        "box_formats": list(gen["box_formats"][row]),
        "truth": _truth(sample),
        "score": score,
        **extra,
    })  # fmt: skip


def write_predictions(folder: Path, predictions: dict[str, dict[str, list[dict]]]) -> list[Path]:
    """``<folder>/<task>_<split>.jsonl`` for every split and task with samples."""
    paths = []
    for split, by_task in predictions.items():
        for task, records in by_task.items():
            if records:
                path = folder / f"{task}_{split}.jsonl"
                write_jsonl(path, records)
                paths.append(path)
    return paths


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
