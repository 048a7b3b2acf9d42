"""Batched generation with a KV cache: greedy or sampled, with spatial decoding of triggers.

The prompt (``prompt_input_ids``, left-padded) follows the soft prefix exactly as in
training; position ids count real tokens only, so padding changes nothing. When a row
emits ``<box>``/``<point>``, the token is fed back and its hidden state from that step
(the same state training uses: the trigger position's final hidden state) queries the
spatial decoder. Textual ``[x1,y1,x2,y2]`` boxes in the text are parsed as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from scalar.core.boxes import parse_box_text


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Keep the ``top_k`` largest logits and the smallest set with probability >= ``top_p``."""
    if top_k and top_k > 0:
        kth = logits.topk(min(int(top_k), logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # the top token is always kept
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model,
    batch: Mapping,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    logits_processor: Callable[[int, Tensor, Tensor], Tensor] | None = None,
) -> dict:
    """Generate continuations of ``batch['prompt_input_ids']`` (runs in eval mode).

    Returns ``texts`` (special tokens other than triggers removed), ``tokens [B, L]``
    (``<pad>`` after ``</s>``), ``logprobs [B, L]`` (log-prob of each chosen token under
    the temperature-scaled model distribution, before top-k/top-p or ``logits_processor``,
    which only restrict the choice; 0 after ``</s>``), ``lengths [B]`` (tokens up to and
    including ``</s>``), ``boxes`` / ``boxes_px`` (per row, in order of appearance, [0, 1]
    and pixels of the original image), ``box_formats`` (``"decoder"`` or ``"text"``) and
    ``box_kinds`` (``"box"`` or ``"point"``). ``logits_processor(step, tokens, logits)``
    may edit the (temperature-scaled) logits before the choice.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    was_training = model.training
    model.eval()
    try:
        return _generate(
            model, batch, int(max_new_tokens), do_sample, float(temperature), top_k, top_p,
            use_cache, generator, logits_processor,
        )  # fmt: skip
    finally:
        model.train(was_training)


def _generate(model, batch, max_new, do_sample, temperature, top_k, top_p, use_cache, gen, proc):
    ids, mask = batch["prompt_input_ids"], batch["prompt_attention_mask"]
    if not bool(mask[:, -1].all()):
        raise ValueError("prompt_input_ids must be left-padded (last column real for every row)")
    b = ids.shape[0]
    patches, soft, grid_hw = model.encode(batch)
    seq, full, pos = model.build_inputs(ids, mask, patches, grid_hw, batch, soft)
    feed, feed_pos, past = seq, pos, None
    tokens = ids.new_zeros(b, 0)
    logprobs = torch.zeros(b, 0, device=ids.device)
    finished = torch.zeros(b, dtype=torch.bool, device=ids.device)
    pending = torch.zeros_like(finished)  # last token is a trigger still without a box
    found: list[dict[int, tuple]] = [{} for _ in range(b)]  # position -> (box01, kind)
    next_pos = pos[:, -1]
    for step in range(max_new + 1):
        if step == max_new and not bool(pending.any()):
            break
        if use_cache:
            hidden, past = model.decode(feed, full, feed_pos, past=past, use_cache=True)
        else:
            hidden, _ = model.decode(seq, full, pos)
        h_last = hidden[:, -1]
        if bool(pending.any()):
            rows = pending.nonzero(as_tuple=True)[0]
            kinds = (tokens[rows, -1] == model.point_id).long()
            boxes = model.predict_boxes(h_last[rows], rows, kinds, patches, grid_hw, batch)
            boxes = boxes["boxes"]
            for r, box, kind in zip(rows.tolist(), boxes.float().tolist(), kinds.tolist()):
                found[r][tokens.shape[1] - 1] = (tuple(box), "point" if kind else "box")
        if step == max_new:
            break
        logits = model.lm_logits(h_last).float() / temperature
        logp = logits.log_softmax(dim=-1)
        if proc is not None:
            logits = proc(step, tokens, logits)
        if do_sample:
            probs = filter_logits(logits, top_k, top_p).softmax(dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
        else:
            nxt = logits.argmax(dim=-1)
        nxt = torch.where(finished, torch.full_like(nxt, model.pad_id), nxt)
        lp = torch.where(finished, 0.0, logp.gather(1, nxt[:, None])[:, 0])
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        logprobs = torch.cat([logprobs, lp[:, None]], dim=1)
        pending = ~finished & model.trigger_mask(nxt)
        finished = finished | (nxt == model.eos_id)
        if bool(finished.all()):
            break
        feed = model.embed_tokens(nxt[:, None]).to(seq.dtype)
        next_pos = next_pos + 1
        feed_pos = next_pos[:, None]
        full = torch.cat([full, full.new_ones(b, 1)], dim=1)
        if not use_cache:
            seq = torch.cat([seq, feed], dim=1)
            pos = torch.cat([pos, feed_pos], dim=1)
    return _collect(model, batch, tokens, logprobs, found)


def _collect(model, batch, tokens: Tensor, logprobs: Tensor, found) -> dict:
    eos = tokens == model.eos_id
    after = (eos.long().cumsum(dim=1) - eos.long()) > 0
    lengths = (~after).sum(dim=1)
    sizes = batch["image_sizes"].tolist()
    out = {"texts": [], "boxes": [], "boxes_px": [], "box_formats": [], "box_kinds": []}
    for r, row in enumerate(tokens.tolist()):
        content = row[: int(lengths[r])]
        if content and content[-1] == model.eos_id:
            content = content[:-1]
        text, boxes, formats, kinds = _read_row(model, content, found[r])
        w, h = sizes[r]
        out["texts"].append(text)
        out["boxes"].append(boxes)
        out["boxes_px"].append([(x1 * w, y1 * h, x2 * w, y2 * h) for x1, y1, x2, y2 in boxes])
        out["box_formats"].append(formats)
        out["box_kinds"].append(kinds)
    out.update(tokens=tokens, logprobs=logprobs, lengths=lengths)
    return out


def _read_row(model, content: list[int], found: dict[int, tuple]):
    """Text and boxes (decoder and textual, in order) of one generated row."""
    tok = model.tokenizer
    keep = {model.box_id, model.point_id}
    strip = set(tok.all_special_ids) - keep

    def text_of(ids):
        return tok.decode([i for i in ids if i not in strip], skip_special_tokens=False)

    boxes, formats, kinds, start = [], [], [], 0
    for i, t in enumerate(content + [None]):
        if t is not None and t not in keep:
            continue
        for box in parse_box_text(text_of(content[start:i]), points=True):
            boxes.append(box)
            formats.append("text")
            kinds.append("point" if box[0] == box[2] and box[1] == box[3] else "box")
        if t is not None:
            box, kind = found[i]
            boxes.append(box)
            formats.append("decoder")
            kinds.append(kind)
        start = i + 1
    return text_of(content), boxes, formats, kinds
