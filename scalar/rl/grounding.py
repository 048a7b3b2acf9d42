"""Grounding as an RL action: where the model puts a box is sampled, scored and trained.

The spatial decoder's last attention over the patch grid (its soft-argmax weights) is a
categorical distribution over grid cells: the greedy box is centred on its mean (plus the
decoder's bounded offset), a sampled box on a cell drawn from it (``softmax(attention
logits / temperature)``). Its geometry is a Gaussian around the decoder's own: centre =
cell centre + offset + ``centre_std`` cells x noise, size = decoder size x exp(``size_std``
x noise). The action's log-probability (cell + geometry) is what GRPO / SCST / DPO
train: the decoder's attention, offset and size heads and the LLM state that queries them.

Rows are REC prompts (``where is {query}?``) answered by ``<box></s>``; each row's one
trigger gives its distribution. Boxes are xyxy in [0, 1].
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from scalar.core.batch import row_image
from scalar.metrics.text import simple_tokenize
from scalar.model.spatial import cell_centres
from scalar.rl.rollout import caption_sample, collate_prompts, completion_batch, rec_sample


def norm_box(box_px: Sequence[float], size: Sequence[int]) -> tuple[float, ...]:
    w, h = size
    return (box_px[0] / w, box_px[1] / h, box_px[2] / w, box_px[3] / h)


def to_px(box01: Sequence[float], size: Sequence[int]) -> tuple[float, ...]:
    w, h = size
    return (box01[0] * w, box01[1] * h, box01[2] * w, box01[3] * h)


@torch.no_grad()
def ground(model, collator, images, infos, texts, max_new_tokens: int, device=None):
    """Greedy grounding of each text with ``where is {text}?`` -> first box in [0, 1] or None."""
    if not texts:
        return []
    samples = [rec_sample(info, t) for info, t in zip(infos, texts)]
    batch = collate_prompts(collator, samples, images, device)
    gen = model.generate(batch, max_new_tokens=max_new_tokens, do_sample=False)
    return [tuple(b[0]) if b else None for b in gen["boxes"]]


@torch.no_grad()
def greedy_texts(model, collator, samples, images, max_new_tokens: int, device=None):
    batch = collate_prompts(collator, samples, images, device)
    return model.generate(batch, max_new_tokens=max_new_tokens, do_sample=False)["texts"]


def box_answers(model, n: int, device=None) -> tuple[Tensor, Tensor]:
    """``(tokens [n, 2], lengths [n])``: the answer ``<box></s>`` of every row."""
    tokens = torch.tensor([[model.box_id, model.eos_id]] * n, dtype=torch.long, device=device)
    return tokens, torch.full((n,), 2, dtype=torch.long, device=device)


def cell_logprobs(model, batch: Mapping[str, Any], temperature: float = 1.0) -> dict:
    """Teacher-forced pass of ``prompt + <box></s>``: ``logp [N, P]`` over grid cells
    (temperature-scaled), ``greedy_logp`` (temperature 1: the weights of the greedy
    soft-argmax), ``offset`` and ``log_size [N, 2]`` (the geometry heads), the greedy
    ``boxes [N, 4]`` and ``grid_hw``.
    Gradients flow when called outside ``no_grad``."""
    n = len(batch["prompt_input_ids"])
    tokens, lengths = box_answers(model, n, batch["prompt_input_ids"].device)
    out = model(completion_batch(batch, tokens, lengths))
    rows = out["box_batch"]
    if len(rows) != n or not bool((rows == torch.arange(n, device=rows.device)).all()):
        raise ValueError("every grounding row must hold exactly one <box> trigger")
    logits = out["box_attn_logits"].float()
    logp = (logits / float(temperature)).log_softmax(dim=-1)
    boxes = out["box_pred"].float()
    return {
        "offset": out["box_offset"].float(),
        "log_size": out["box_size"].float().clamp_min(1e-6).log(),
        "logp": logp,
        "greedy_logp": logits.log_softmax(dim=-1),
        "boxes": boxes,
        "grid_hw": tuple(out["grid_hw"]),
    }


def sample_cells(logp: Tensor, g: int, generator: torch.Generator | None = None) -> Tensor:
    """``g`` cells per row of ``logp [N, P]`` -> ``[N * g]`` (row ``i``'s at ``i*g .. i*g+g-1``)."""
    probs = logp.detach().float().exp()
    return torch.multinomial(probs, int(g), replacement=True, generator=generator).reshape(-1)


def sample_geometry(
    offset: Tensor, log_size: Tensor, stds: tuple[float, float], cell: tuple[float, float],
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Sampled ``(offset, log_size)`` around the heads' values ``[N, 2]``: Gaussian noise of
    ``stds[0]`` cells (``cell``: (w, h) of a cell in [0, 1]) and ``stds[1]`` in log size."""
    scale = offset.new_tensor(cell) * float(stds[0])
    noise = torch.randn(offset.shape, generator=generator).to(offset)
    noise_s = torch.randn(log_size.shape, generator=generator).to(log_size)
    return offset.detach() + scale * noise, log_size.detach() + float(stds[1]) * noise_s


def geometry_logprob(
    offset: Tensor, log_size: Tensor, taken: tuple[Tensor, Tensor], stds: tuple[float, float],
    cell: tuple[float, float],
) -> Tensor:  # fmt: skip
    """Log-density ``[N]`` (up to a constant) of the ``taken`` geometry under Gaussians
    centred on the heads' ``offset`` / ``log_size``; a zero std contributes nothing."""
    out = offset.new_zeros(len(offset))
    scale = offset.new_tensor(cell) * float(stds[0])
    if stds[0] > 0:
        out = out - (((taken[0] - offset) / scale) ** 2).sum(-1) / 2
    if stds[1] > 0:
        out = out - (((taken[1] - log_size) / float(stds[1])) ** 2).sum(-1) / 2
    return out


def action_logprob(
    policy: Mapping[str, Any], cells: Tensor, taken: tuple[Tensor, Tensor], g: int,
    stds: tuple[float, float],
) -> Tensor:  # fmt: skip
    """Log-probability ``[N * g]`` of sampled actions (``cells`` and ``taken`` geometry,
    ``g`` per row) under a ``cell_logprobs`` output ``policy`` of the ``N`` prompts."""
    h, w = policy["grid_hw"]
    cell = policy["logp"].repeat_interleave(g, 0).gather(1, cells[:, None])[:, 0]
    offset, log_size = (policy[k].repeat_interleave(g, 0) for k in ("offset", "log_size"))
    return cell + geometry_logprob(offset, log_size, taken, stds, (1 / w, 1 / h))


def placed_boxes(cells: Tensor, offset: Tensor, log_size: Tensor, grid_hw) -> Tensor:
    """Boxes ``[N, 4]``: cell centre + ``offset``, size ``exp(log_size)``, clipped to [0, 1]."""
    centre = cell_centres(grid_hw, cells.device)[cells] + offset.to(torch.float32)
    half = log_size.to(torch.float32).exp() / 2
    return torch.cat([centre - half, centre + half], dim=-1).clamp(0, 1)


def categorical_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Exact ``KL(p || ref)`` per row of two log-distributions ``[N, P]`` (>= 0)."""
    return (logp.exp() * (logp - ref_logp.detach())).sum(dim=-1)


def head_noun(query: str, names: Collection[str]) -> str | None:
    """The first word of ``query`` that is a category name (``None``: none is)."""
    return next((w for w in simple_tokenize(query) if w in names), None)


@torch.no_grad()
def ground_rows(model, collator, picks: Sequence, names: Collection[str], device=None):
    """``ground`` rows ``(samples, images)`` of ``picks = [(item index, item, [query
    indices])]``. Every query of an item is grounded greedily once (box and confidence:
    the peak of its cell distribution); a row's ``claimed`` boxes are those of the item's
    queries naming another category (``head_noun``) with a higher confidence, and its
    ``proposals`` the item's region proposals, both in [0, 1]."""
    allq = [(i, it, q) for i, it, _ in picks for q in it["expressions"]]
    batch = collate_prompts(collator, [rec_sample(it["scene"].image, q) for _, it, q in allq],
                            [it["image"] for _, it, _ in allq], device)  # fmt: skip
    pol = cell_logprobs(model, batch)
    conf = pol["logp"].max(dim=-1).values.exp().tolist()
    boxes = [tuple(b) for b in pol["boxes"].tolist()]
    samples, images, start = [], [], 0
    for i, it, chosen in picks:
        exprs, size = it["expressions"], tuple(it["size"])
        heads = it.get("heads", {})  # head words of caption phrases naming no known word
        nouns = [head_noun(q, names) or heads.get(q) for q in exprs]
        proposals = [norm_box(p, size) for p in it["proposals"]]
        for a in chosen:
            claimed = [boxes[start + b] for b in range(len(exprs))
                       if nouns[b] is not None and nouns[a] is not None and nouns[b] != nouns[a]
                       and conf[start + b] > conf[start + a]]  # fmt: skip
            samples.append(rec_sample(it["scene"].image, exprs[a], role="ground", query=exprs[a],
                                      size=size, item=i, claimed=claimed, greedy=boxes[start + a],
                                      proposals=proposals))  # fmt: skip
            images.append(it["image"])
        start += len(exprs)
    return samples, images


@torch.no_grad()
def ground_context(model, collator, batch: Mapping[str, Any], boxes: Sequence,
                   tokens: tuple[int, int] | None = None, device=None):  # fmt: skip
    """Reward contexts of ``ground`` rows whose sampled boxes are ``boxes`` (one per row):
    ``first_boxes``, ``proposal_boxes``, ``claimed_boxes``, ``greedy_boxes``, ``queries``;
    with ``tokens = (describe budget, ground budget)`` also ``descriptions`` (each box described greedily)
    and ``second_boxes`` (each description grounded greedily again)."""
    samples = batch["samples"]
    if not samples:
        return []
    boxes = [tuple(float(v) for v in b) for b in boxes]
    ctx = {
        "queries": [s.meta["query"] for s in samples],
        "first_boxes": boxes,
        "proposal_boxes": [s.meta["proposals"] for s in samples],
        "claimed_boxes": [s.meta["claimed"] for s in samples],
        "greedy_boxes": [s.meta["greedy"] for s in samples],
    }
    if tokens is not None:
        images = [row_image(batch, j) for j in range(len(samples))]
        asks = [caption_sample(s.image, to_px(b, s.meta["size"]), "box")
                for s, b in zip(samples, boxes)]  # fmt: skip
        texts = greedy_texts(model, collator, asks, images, tokens[0], device)
        again = ground(model, collator, images, [s.image for s in samples], texts, tokens[1],
                       device)  # fmt: skip
        ctx.update(descriptions=texts, second_boxes=again)
    return [(list(range(len(samples))), ctx)]
