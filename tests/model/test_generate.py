"""Generation: KV cache equals no cache, sampling, log-probs, pixel boxes."""

import pytest
import torch

from scalar.core.boxes import parse_box_text
from scalar.model.generate import filter_logits

from .conftest import force


def _schedule(model, tokenizer):
    """Row 0: <box> at step 1; row 1: <point> at step 0 then </s> at step 3;
    row 2: "yes", a textual box, then <box>."""
    text = tokenizer(" [120,340,560,780]", add_special_tokens=False)["input_ids"]
    sched = {(0, 1): model.box_id, (1, 0): model.point_id, (1, 3): model.eos_id}
    sched[(2, 0)] = tokenizer(" yes", add_special_tokens=False)["input_ids"][0]
    for i, t in enumerate(text):
        sched[(2, 1 + i)] = t
    sched[(2, 1 + len(text))] = model.box_id
    return sched, len(text)


def _teacher_forced(model, batch, gen, temperature):
    """Log-probs and boxes of the generated tokens recomputed by ``model.forward``."""
    toks, lengths = gen["tokens"], gen["lengths"]
    gmask = (torch.arange(toks.shape[1])[None] < lengths[:, None]).long()
    ids = torch.cat([batch["prompt_input_ids"], toks], dim=1)
    mask = torch.cat([batch["prompt_attention_mask"], gmask], dim=1)
    labels = torch.cat([torch.full_like(batch["prompt_input_ids"], -100), toks], dim=1)
    labels[mask == 0] = -100
    out = model({**batch, "input_ids": ids, "attention_mask": mask, "labels": labels})
    tp = batch["prompt_input_ids"].shape[1]
    logits = out["logits"][:, tp - 1 : -1].float() / temperature
    lp = logits.log_softmax(-1).gather(2, toks[..., None])[..., 0] * gmask
    return lp, out


@pytest.mark.parametrize("do_sample", [False, True])
def test_kv_cache_matches_full_recompute(model, tokenizer, batch, do_sample):
    sched, _ = _schedule(model, tokenizer)
    kw = dict(
        max_new_tokens=22, do_sample=do_sample, temperature=1.5, logits_processor=force(sched)
    )
    res = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(7)
        res.append(model.generate(batch, use_cache=use_cache, generator=gen, **kw))
    a, b = res
    assert torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["lengths"], b["lengths"])
    assert torch.allclose(a["logprobs"], b["logprobs"], atol=1e-5)
    assert a["texts"] == b["texts"] and a["box_formats"] == b["box_formats"]
    assert [len(x) for x in a["boxes"]] == [len(x) for x in b["boxes"]]
    for ra, rb in zip(a["boxes"], b["boxes"]):
        assert torch.allclose(torch.tensor(ra), torch.tensor(rb), atol=1e-5)
    # the forced triggers were decoded, the textual box parsed, in order of appearance
    assert a["box_formats"][0][0] == "decoder" and a["box_kinds"][1] == ["point"]
    assert a["box_formats"][2][:2] == ["text", "decoder"]
    assert a["boxes"][2][0] == pytest.approx((120 / 999, 340 / 999, 560 / 999, 780 / 999))
    assert int(a["lengths"][1]) == 4 and a["tokens"][1, 3] == model.eos_id
    assert (a["tokens"][1, 4:] == model.pad_id).all() and (a["logprobs"][1, 4:] == 0).all()


def test_sampling_logprobs_and_boxes_match_teacher_forcing(model, tokenizer, batch):
    temp = 3.0
    greedy = model.generate(batch, max_new_tokens=22)
    free = model.generate(
        batch, max_new_tokens=22, do_sample=True, temperature=temp,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    assert not torch.equal(greedy["tokens"], free["tokens"])
    sched, _ = _schedule(model, tokenizer)
    forced = model.generate(
        batch, max_new_tokens=22, do_sample=True, temperature=temp,
        generator=torch.Generator().manual_seed(3), logits_processor=force(sched),
    )  # fmt: skip
    model.eval()
    for res in (free, forced):
        with torch.no_grad():
            lp, out = _teacher_forced(model, batch, res, temp)
        assert torch.allclose(res["logprobs"], lp, atol=1e-4)
        decoder = [b for row, f in zip(res["boxes"], res["box_formats"]) for b, x in zip(row, f)
                   if x == "decoder"]  # fmt: skip
        assert len(decoder) == len(out["box_pred"])
        if decoder:
            assert torch.allclose(torch.tensor(decoder), out["box_pred"].float(), atol=1e-4)
    assert len(out["box_pred"]) >= 3  # the forced run decoded its triggers


def test_greedy_logprobs_match_teacher_forcing(model, batch):
    greedy = model.generate(batch, max_new_tokens=10, temperature=0.7)
    model.eval()
    with torch.no_grad():
        lp, _ = _teacher_forced(model, batch, greedy, 0.7)
    assert torch.allclose(greedy["logprobs"], lp, atol=1e-4)
    again = model.generate(batch, max_new_tokens=10, do_sample=True, top_k=1)
    assert torch.equal(again["tokens"], greedy["tokens"])  # top-1 sampling is greedy


def test_pixel_boxes_use_each_rows_image_size(model, tokenizer, batch):
    sched, _ = _schedule(model, tokenizer)
    res = model.generate(batch, max_new_tokens=22, logits_processor=force(sched))
    sizes = batch["image_sizes"].tolist()
    assert len(set(map(tuple, sizes))) == 3
    n = 0
    for r, (boxes, px) in enumerate(zip(res["boxes"], res["boxes_px"])):
        w, h = sizes[r]
        for b01, bpx in zip(boxes, px):
            assert bpx == pytest.approx((b01[0] * w, b01[1] * h, b01[2] * w, b01[3] * h))
            n += 1
    assert n >= 4
    text_boxes = parse_box_text(res["texts"][2], points=True)
    assert text_boxes and text_boxes[0] == pytest.approx(res["boxes"][2][0])


def test_text_keeps_triggers_and_drops_other_special_tokens(model, tokenizer, batch):
    sched, _ = _schedule(model, tokenizer)
    res = model.generate(batch, max_new_tokens=22, logits_processor=force(sched))
    assert res["texts"][1].startswith("<point>")
    for text in res["texts"]:
        assert "</s>" not in text and "<pad>" not in text and "<sep>" not in text


def test_filter_logits_by_hand():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    k2 = filter_logits(logits, top_k=2)
    assert torch.isinf(k2[0, [0, 3]]).all() and torch.equal(k2[0, [1, 2]], logits[0, [1, 2]])
    # probs ~ [0.087, 0.644, 0.237, 0.032]: top_p 0.7 keeps the two largest, 0.5 only one
    p = filter_logits(logits, top_p=0.7)
    assert torch.isfinite(p[0]).tolist() == [False, True, True, False]
    p = filter_logits(logits, top_p=0.5)
    assert torch.isfinite(p[0]).tolist() == [False, True, False, False]


def test_right_padded_prompt_is_refused(model, batch):
    bad = {**batch, "prompt_attention_mask": batch["prompt_attention_mask"].flip(1)}
    with pytest.raises(ValueError, match="left-padded"):
        model.generate(bad, max_new_tokens=2)
