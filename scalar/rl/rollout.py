"""Rollout helpers: prompt batches, G samples per prompt, teacher-forced log-probabilities.

Samples come from real autoregressive sampling (``model.generate(do_sample=True)`` with
the KV cache) on a prompt batch whose rows are repeated G times. The loss recomputes the
log-probabilities of the sampled tokens with a teacher-forced pass (with gradients) over
``prompt + completion``, under the same temperature-scaled distribution.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from scalar.core.batch import ITEM_GROUPS
from scalar.data.sample import Sample, VisualPrompt
from scalar.data.scene import ImageInfo
from scalar.data.tasks import PROMPTS


def caption_sample(image: ImageInfo, box, kind: str = "box", mask=None, **meta) -> Sample:
    """``describe <region>.`` for a pixel box (a point prompt uses the box centre)."""
    return Sample("caption", image, PROMPTS["caption"], "", [_prompt(box, kind, mask)], meta=meta)


def roc_sample(image: ImageInfo, box, kind: str = "box", mask=None, **meta) -> Sample:
    """``what is <region>?`` with a box, point or mask prompt."""
    return Sample("roc", image, PROMPTS["roc"], "", [_prompt(box, kind, mask)], meta=meta)


def rec_sample(image: ImageInfo, expression: str, **meta) -> Sample:
    """``where is {expression}?``"""
    return Sample("rec", image, PROMPTS["rec"].format(expression=expression), "", meta=meta)


def _prompt(box, kind: str, mask) -> VisualPrompt:
    box = tuple(float(v) for v in box)
    if kind == "point":
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return VisualPrompt("point", (cx, cy, cx, cy), point=(cx, cy))
    return VisualPrompt(kind, box, mask=mask if kind == "mask" else None)


def collate_prompts(collator, samples: Sequence[Sample], images: Sequence[Tensor], device=None):
    """Prompt samples (with their decoded images) -> a batch on ``device``."""
    batch = collator([{"sample": s, "image": im.cpu()} for s, im in zip(samples, images)])
    return to_device(batch, device)


def to_device(batch: Mapping[str, Any], device) -> dict:
    if device is None:
        return dict(batch)
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def take_rows(batch: Mapping[str, Any], rows: Sequence[int]) -> dict:
    """Rows ``rows`` of a batch, repeats allowed (``select_rows`` keeps each row once).

    Per-row tensors and lists are indexed; ``region_*``/``target_*``/``concept_*`` items
    (and ``object_*``) of a source row are copied for each of its new rows, ``*_batch`` renumbered.
    """
    rows = [int(r) for r in rows]
    size = len(batch["prompt_input_ids"])
    out: dict[str, Any] = {}
    groups = {}
    for group in ITEM_GROUPS:
        owner = batch.get(f"{group}_batch")
        if isinstance(owner, Tensor):
            items = [
                (i, k) for i, r in enumerate(rows) for k in (owner == r).nonzero()[:, 0].tolist()
            ]
            groups[group] = items
    for key, value in batch.items():
        group = key.split("_", 1)[0]
        if key == "images" and isinstance(batch.get("image_index"), Tensor):
            out[key] = value  # rows keep pointing at them through image_index
        elif group in groups and isinstance(value, Tensor):
            items = groups[group]
            if key == f"{group}_batch":
                out[key] = torch.tensor([i for i, _ in items], dtype=value.dtype).to(value.device)
            else:
                index = torch.tensor([k for _, k in items], dtype=torch.long, device=value.device)
                out[key] = value[index]
        elif isinstance(value, Tensor) and value.ndim > 0 and len(value) == size:
            out[key] = value[torch.tensor(rows, dtype=torch.long, device=value.device)]
        elif isinstance(value, list) and len(value) == size:
            out[key] = [value[r] for r in rows]
        else:
            out[key] = value
    return out


def repeat_rows(batch: Mapping[str, Any], g: int) -> dict:
    """Every row repeated ``g`` times in place: rows ``b*g .. b*g+g-1`` copy row ``b``."""
    n = len(batch["prompt_input_ids"])
    return take_rows(batch, [b for b in range(n) for _ in range(int(g))])


def completion_mask(tokens: Tensor, lengths: Tensor) -> Tensor:
    """``[N, L]`` 1 on generated tokens up to and including ``</s>``."""
    steps = torch.arange(tokens.shape[1], device=tokens.device)
    return (steps[None, :] < lengths.to(tokens.device)[:, None]).long()


def completion_batch(batch: Mapping[str, Any], tokens: Tensor, lengths: Tensor) -> dict:
    """``prompt (left-padded) + completion`` as a teacher-forcing batch (no labels)."""
    mask = completion_mask(tokens, lengths)
    ids = torch.cat([batch["prompt_input_ids"], tokens.to(batch["prompt_input_ids"])], dim=1)
    att = torch.cat([batch["prompt_attention_mask"], mask.to(batch["prompt_attention_mask"])], 1)
    out = {k: v for k, v in batch.items() if k.startswith("region_") or k.startswith("image")}
    out.update(input_ids=ids, attention_mask=att)
    return out


def token_logprobs(
    model: nn.Module, batch: Mapping[str, Any], tokens: Tensor, lengths: Tensor,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Teacher-forced log-probs ``[N, L]`` of ``tokens`` after each row's prompt, and the mask.

    Uses ``log_softmax(logits / temperature)`` like ``generate``'s ``logprobs``; entries
    outside the mask are 0. Gradients flow when called outside ``no_grad``.
    """
    full = completion_batch(batch, tokens, lengths)
    logits = model(full)["logits"]
    p = batch["prompt_input_ids"].shape[1]
    steps = tokens.shape[1]
    if steps == 0:
        return logits.new_zeros(len(tokens), 0), tokens.new_zeros(len(tokens), 0)
    pred = logits[:, p - 1 : p - 1 + steps].float() / float(temperature)
    lp = pred.log_softmax(-1).gather(-1, tokens[..., None].clamp(min=0)).squeeze(-1)
    mask = completion_mask(tokens, lengths)
    return lp * mask, mask


def extend_prompts(batch: Mapping[str, Any], prefixes: Sequence[Sequence[int]], pad_id: int):
    """Append token ``prefixes`` to each row's prompt (kept left-padded): forced prefixes."""
    rows = []
    ids, att = batch["prompt_input_ids"], batch["prompt_attention_mask"]
    for r in range(len(ids)):
        real = ids[r][att[r].bool()].tolist()
        rows.append(real + list(prefixes[r]))
    width = max(len(r) for r in rows)
    new_ids = ids.new_full((len(rows), width), pad_id)
    new_att = att.new_zeros((len(rows), width))
    for r, row in enumerate(rows):
        new_ids[r, width - len(row) :] = torch.tensor(row, dtype=ids.dtype)
        new_att[r, width - len(row) :] = 1
    out = dict(batch)
    out.update(prompt_input_ids=new_ids, prompt_attention_mask=new_att)
    return out


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy with every parameter frozen, in eval mode (the KL / DPO reference)."""
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref.eval()


def sample_groups(model, batch: Mapping[str, Any], g: int, gen_kwargs: Mapping[str, Any]):
    """Repeat each prompt ``g`` times and sample; returns ``(repeated batch, generation)``."""
    rep = repeat_rows(batch, g)
    gen = model.generate(rep, do_sample=True, **gen_kwargs)
    return rep, gen
