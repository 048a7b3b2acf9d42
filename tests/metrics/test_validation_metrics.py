"""REC accuracy, classification accuracy and CIDEr-D against independent references."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from torchvision.ops import box_iou

from scalar.metrics import (
    CaptionScores,
    ClassificationAccuracy,
    RecBoxMetrics,
    cider_d,
    normalize_answer,
)


def _random_boxes(n: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * 0.6
    wh = torch.rand(n, 2, generator=g) * 0.4 + 0.05
    return torch.cat([xy, xy + wh], dim=1)


def test_rec_accuracy_matches_torchvision_iou_and_groups():
    g = torch.Generator().manual_seed(0)
    target = _random_boxes(200, g)
    pred = target + (torch.rand(200, 4, generator=g) - 0.5) * 0.3  # some hits, some misses
    pred[::17] = float("nan")  # no box produced: a miss
    metas = [
        {"held_out": i % 3 == 0, "sent_kind": ["attribute", "relational"][i % 2]}
        for i in range(200)
    ]
    metric = RecBoxMetrics((0.5,))
    for lo in range(0, 200, 64):  # several updates accumulate
        metric.update(pred[lo : lo + 64], target[lo : lo + 64], metas[lo : lo + 64])
    out = metric.compute()

    iou = box_iou(torch.nan_to_num(pred), target).diagonal()
    hit = (iou >= 0.5) & ~torch.isnan(pred).any(1)
    assert 0.1 < hit.float().mean() < 0.9  # the example exercises both outcomes
    assert out["acc@0.5"] == pytest.approx(hit.float().mean().item())
    held = torch.tensor([m["held_out"] for m in metas])
    rel = torch.tensor([m["sent_kind"] == "relational" for m in metas])
    assert out["held_out/acc@0.5"] == pytest.approx(hit[held].float().mean().item())
    assert out["seen/acc@0.5"] == pytest.approx(hit[~held].float().mean().item())
    assert out["relational/acc@0.5"] == pytest.approx(hit[rel].float().mean().item())
    assert out["attribute/acc@0.5"] == pytest.approx(hit[~rel].float().mean().item())


def test_rec_accuracy_threshold_is_inclusive_and_empty_is_nan():
    metric = RecBoxMetrics((0.5,))
    # IoU exactly 0.5: [0,0,1,1] vs [0,0,1,0.5]
    metric.update(torch.tensor([[0.0, 0.0, 1.0, 0.5]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    assert metric.compute()["acc@0.5"] == 1.0
    assert math.isnan(RecBoxMetrics((0.5,)).compute()["acc@0.5"])
    with pytest.raises(ValueError, match="\\[N, 4\\]"):
        metric.update(torch.zeros(2, 4), torch.zeros(3, 4))


def test_text_accuracy_normalises_case_punctuation_articles():
    assert normalize_answer("The Red, circle.") == "red circle"
    metric = ClassificationAccuracy()
    metric.update(
        ["A circle", "square!", "triangle", "star"],
        ["circle", ["box", "Square"], "circle", "star"],
        [{"prompt_kind": "box"}, {"prompt_kind": "point"}, {"prompt_kind": "box"}, None],
    )
    out = metric.compute()
    assert out["acc"] == 0.75 and out["box/acc"] == 0.5 and out["point/acc"] == 1.0


def _ngrams(words, n):
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _cider_d_reference(preds, refs, sigma=6.0):
    """CIDEr-D from its definition (Vedantam et al. 2015 with the COCO-server D variant)."""
    tok = [[r.lower().replace(",", " ").replace(".", " ").split() for r in rs] for rs in refs]
    hyp = [p.lower().replace(",", " ").replace(".", " ").split() for p in preds]
    n_img = len(preds)
    df = Counter()
    for rs in tok:
        df.update({g for r in rs for n in range(1, 5) for g in _ngrams(r, n)})

    def vec(words, n):
        counts = _ngrams(words, n)
        v = {g: c * (math.log(n_img) - math.log(max(1.0, df[g]))) for g, c in counts.items()}
        return v, math.sqrt(sum(x * x for x in v.values())), sum(_ngrams(words, 2).values())

    scores = []
    for h, rs in zip(hyp, tok):
        total = 0.0
        for r in rs:
            for n in range(1, 5):
                vh, nh, lh = vec(h, n)
                vr, nr, lr = vec(r, n)
                s = sum(min(vh[g], vr.get(g, 0.0)) * vr.get(g, 0.0) for g in vh)
                if nh and nr:
                    s /= nh * nr
                total += s * math.exp(-((lh - lr) ** 2) / (2 * sigma**2)) / 4
        scores.append(10 * total / len(rs))
    return sum(scores) / len(scores), scores


def test_cider_d_matches_definition():
    preds = ["a red circle left of a blue square", "green triangle", "a big star."]
    refs = [
        ["the red circle to the left of the blue square", "red circle"],
        ["a small green triangle", "green triangle on top"],
        ["a big yellow star", "big star", "the star"],
    ]
    score, per = cider_d(preds, refs)
    want, want_per = _cider_d_reference(preds, refs)
    assert score == pytest.approx(want, rel=1e-9)
    assert per == pytest.approx(want_per, rel=1e-9)
    metric = CaptionScores(meteor=False)
    metric.update(preds[:2], refs[:2])
    metric.update(preds[2:], refs[2:])
    assert metric.compute()["cider"] == pytest.approx(want, rel=1e-9)
    assert math.isnan(CaptionScores(meteor=False).compute()["cider"])


def test_record_metrics_sync_through_a_process_group(tmp_path):
    """DDP sync gathers the Python records (a world of one, over gloo)."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        metric = RecBoxMetrics((0.5,))
        metric.update(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
        metric.update(torch.tensor([[0.0, 0.0, 0.1, 0.1]]), torch.tensor([[0.5, 0.5, 1.0, 1.0]]))
        metric.sync(distributed_available=lambda: True)
        hit, miss = ({"iou": v, "parsed": True, "groups": ()} for v in (1.0, 0.0))
        assert metric.records == [(None, hit), (None, miss)]  # gathered from the one rank
        metric.unsync()
        assert metric.compute()["acc@0.5"] == 0.5
    finally:
        dist.destroy_process_group()
