"""Bootstrap intervals: numpy references of the resampled figures, pycocoevalcap's corpus
caption scores recomputed on resampled corpora."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalar.metrics.bootstrap import (
    bootstrap_intervals,
    count_for,
    metric_intervals,
    percentile_interval,
    resample_indices,
)
from scalar.metrics.bootstrap_caption import CiderD, bleu4_of_totals, bleu_stats, counts_of
from scalar.metrics.classification import ClassificationAccuracy
from scalar.metrics.grounding import GroundedPR, RecBoxMetrics
from scalar.metrics.spatial_qa import SpatialQAMetrics

B, SEED = 400, 7


def test_percentile_interval_hand_worked():
    # linear interpolation between order statistics: rank 2.5% of 0..100 is 2.5
    assert percentile_interval(list(range(101))) == pytest.approx([2.5, 97.5])
    assert percentile_interval([0.25] * 10) == [0.25, 0.25]
    # two values: 2.5% of the way from 1 to 3 is 1.05; NaN left out
    assert percentile_interval([float("nan"), 1.0, 3.0]) == pytest.approx([1.05, 2.95])
    assert percentile_interval([float("nan")]) is None


def test_resamples_are_fixed_by_the_seed_and_uniform():
    a, b = resample_indices(5, 3, seed=1), resample_indices(5, 3, seed=1)
    assert a.shape == (3, 5) and (a == b).all() and a.min() >= 0 and a.max() <= 4
    assert not (resample_indices(5, 3, seed=2) == a).all()
    assert (counts_of(a, 5).sum(axis=1) == 5).all()
    assert (counts_of(a, 5)[0] == np.bincount(a[0], minlength=5)).all()
    with pytest.raises(ValueError, match="n >= 1"):
        resample_indices(0, 3, seed=1)


def test_one_sample_has_a_point_interval():
    metric = ClassificationAccuracy()
    metric.update(["cat"], ["cat"])
    metric.compute()
    assert metric_intervals(metric, B, SEED) == {"acc": [1.0, 1.0]}


def test_accuracy_and_group_intervals_match_numpy():
    rng = np.random.default_rng(0)
    n = 60
    correct = rng.random(n) < 0.7
    held = rng.random(n) < 0.3
    metric = ClassificationAccuracy()
    metric.update(["cat" if c else "dog" for c in correct], ["cat"] * n,
                  [{"held_out": bool(h)} for h in held])  # fmt: skip
    values = metric.compute()
    got = metric_intervals(metric, B, SEED)
    idx = resample_indices(n, B, SEED)
    assert got["acc"] == pytest.approx(np.percentile(correct[idx].mean(1), [2.5, 97.5]).tolist())
    drawn_held = held[idx]
    held_acc = (correct[idx] & drawn_held).sum(1) / drawn_held.sum(1)
    assert got["held_out/acc"] == pytest.approx(np.percentile(held_acc, [2.5, 97.5]).tolist())
    assert got["acc"][0] < values["acc"] < got["acc"][1]
    assert set(got) == {"acc", "held_out/acc", "seen/acc"}  # counts get no interval
    assert count_for("held_out/acc", values) == held.sum() and count_for("acc", values) == n


def test_rec_miou_and_grounded_micro_f1_match_numpy():
    rng = np.random.default_rng(1)
    n = 40
    true = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * n)
    shift = torch.tensor(rng.uniform(0, 8, n), dtype=torch.float32)
    pred = true + torch.stack([shift, shift * 0, shift, shift * 0], 1)
    rec = RecBoxMetrics((0.5,))
    rec.update(pred, true)
    rec.compute()
    iou = (10 - shift.double().numpy()) * 10 / (200 - (10 - shift.double().numpy()) * 10)
    idx = resample_indices(n, B, SEED)
    got = metric_intervals(rec, B, SEED)
    assert got["miou"] == pytest.approx(np.percentile(iou[idx].mean(1), [2.5, 97.5]).tolist())
    hits = iou >= 0.5
    assert got["acc@0.5"] == pytest.approx(np.percentile(hits[idx].mean(1), [2.5, 97.5]).tolist())

    box = (0.0, 0.0, 10.0, 10.0)
    tp, n_pred, n_true = rng.integers(0, 3, n), rng.integers(3, 5, n), rng.integers(2, 4, n)
    pr = GroundedPR()
    pr.update(
        [[("cat", box)] * int(t) + [("dog", box)] * int(p - t) for t, p in zip(tp, n_pred)],
        [[("cat", box)] * int(t) + [("bird", box)] * int(m - t) for t, m in zip(tp, n_true)],
    )
    pr.compute()
    got = metric_intervals(pr, B, SEED)
    f1 = 2 * tp[idx].sum(1) / (n_pred[idx].sum(1) + n_true[idx].sum(1))  # = 2PR / (P + R)
    assert got["f1"] == pytest.approx(np.percentile(f1, [2.5, 97.5]).tolist())
    recall = tp[idx].sum(1) / n_true[idx].sum(1)
    assert got["recall"] == pytest.approx(np.percentile(recall, [2.5, 97.5]).tolist())


def test_spatial_qa_relative_error_interval_matches_numpy():
    rng = np.random.default_rng(2)
    n = 30
    values = rng.integers(1, 50, n)
    answers = values + rng.integers(-5, 6, n)
    metric = SpatialQAMetrics()
    metric.update([str(a) for a in answers], [str(v) for v in values],
                  [{"answer_type": "quantitative", "value": int(v)} for v in values])  # fmt: skip
    metric.compute()
    err = np.abs(answers - values) / np.maximum(values, 1)
    idx = resample_indices(n, B, SEED)
    got = metric_intervals(metric, B, SEED)
    assert got["quant/mre"] == pytest.approx(np.percentile(err[idx].mean(1), [2.5, 97.5]).tolist())


def test_bootstrap_intervals_call_the_summary_on_each_resample():
    seen = []

    def summarize(recs):
        seen.append(len(recs))
        return {"mean": sum(recs) / len(recs), "n": len(recs)}

    got = bootstrap_intervals([1.0, 2.0, 3.0], summarize, resamples=50, seed=3)
    assert seen == [3] * 51 and set(got) == {"mean"}  # the full set once, then each resample
    assert bootstrap_intervals([], summarize, 50, 3) == {}


def _corpus(n, seed):
    rng = np.random.default_rng(seed)
    words = "a red blue big small square circle star left of the on top near".split()

    def sentence():
        return " ".join(rng.choice(words, rng.integers(1, 9)))

    return [sentence() for _ in range(n)], [[sentence() for _ in range(rng.integers(1, 4))]
                                            for _ in range(n)]  # fmt: skip


def test_bleu4_and_cider_d_recomputed_on_resamples_equal_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    n = 40
    preds, refs = _corpus(n, 0)
    idx = resample_indices(n, 4, SEED)
    idx[0] = np.arange(n)  # the corpus itself
    counts = counts_of(idx, n)
    bleu = bleu4_of_totals(counts @ bleu_stats(preds, refs))
    cider = CiderD(preds, refs).corpus(counts)
    for b, row in enumerate(idx):  # a sample drawn twice is listed twice
        gts = {j: refs[i] for j, i in enumerate(row)}
        res = {j: [preds[i]] for j, i in enumerate(row)}
        want_bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        want_cider, _ = Cider().compute_score(gts, res)
        assert bleu[b] == pytest.approx(want_bleu[3], rel=1e-12)
        assert cider[b] == pytest.approx(want_cider, rel=1e-12)


def test_caption_metric_intervals_are_percentiles_of_recomputed_corpus_scores():
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    n, resamples = 24, 30
    preds, refs = _corpus(n, 1)
    from scalar.metrics.captions_full import CaptionScores

    metric = CaptionScores(meteor=False)
    metric.update(preds, refs, keys=list(range(n)))
    values = metric.compute()
    got = metric.intervals(resamples, SEED)
    assert set(got) == {"bleu4", "rouge_l", "cider"}
    cider, rouge = [], []
    for row in resample_indices(n, resamples, SEED):
        gts = {j: refs[i] for j, i in enumerate(row)}
        res = {j: [preds[i]] for j, i in enumerate(row)}
        cider.append(Cider().compute_score(gts, res)[0])
        rouge.append(Rouge().compute_score(gts, res)[0])
    assert got["cider"] == pytest.approx(np.percentile(cider, [2.5, 97.5]).tolist(), rel=1e-9)
    assert got["rouge_l"] == pytest.approx(np.percentile(rouge, [2.5, 97.5]).tolist(), rel=1e-9)
    assert got["cider"][0] <= values["cider"] <= got["cider"][1]
