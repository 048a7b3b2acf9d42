"""Evaluation metrics against independent references and hand-worked examples."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou as tv_box_iou

from scalar.metrics import caption
from scalar.metrics.caption import CaptionScores, caption_scores, tokenized
from scalar.metrics.classification import ClassificationAccuracy
from scalar.metrics.grounding import GroundedPR, RecBoxMetrics, category_match, mentions
from scalar.metrics.spatial_qa import SpatialQAMetrics, parse_number

CAPTIONS = [
    ("a red square left of the blue circle", ["red square left of a blue circle", "the red box"]),
    ("small green star", ["a small green star", "green star at the top", "tiny star"]),
    ("the big yellow circle", ["a large yellow circle", "yellow circle right of the square"]),
    ("", ["a purple triangle", "triangle"]),  # an empty output: unparseable, scored 0
    ("two shapes: a heart and a hexagon!", ["a heart next to a hexagon", "heart and hexagon"]),
]


def _random_boxes(g: torch.Generator, n: int, size: float = 200.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_rec_metrics_equal_torchvision_iou_on_random_boxes():
    g = torch.Generator().manual_seed(0)
    true = _random_boxes(g, 300)
    pred = true + torch.randn(300, 4, generator=g) * 15  # near misses and hits
    pred[:, 2:] = torch.maximum(pred[:, 2:], pred[:, :2] + 1)
    missing = torch.rand(300, generator=g) < 0.1
    pred[missing] = float("nan")
    metas = [{"held_out": i % 3 == 0, "sent_kind": "relational" if i % 2 else "attribute"}
             for i in range(300)]  # fmt: skip
    m = RecBoxMetrics()
    m.update(pred[:120], true[:120], metas[:120], keys=[("val", i) for i in range(120)])
    m.update(pred[120:], true[120:], metas[120:], keys=[("val", i) for i in range(120, 300)])
    m.update(pred[:7], true[:7], metas[:7], keys=[("val", i) for i in range(7)])  # DDP padding
    got = m.compute()

    iou = torch.diag(tv_box_iou(torch.nan_to_num(pred).double(), true.double()))
    iou[missing] = 0.0
    for t in (0.5, 0.75, 0.9):
        assert got[f"acc@{t:g}"] == pytest.approx(float(((iou >= t) & ~missing).double().mean()))
    assert got["miou"] == pytest.approx(float(iou.mean()), abs=1e-6)
    assert got["n"] == 300 and got["unparseable"] == int(missing.sum())
    held = torch.tensor([i % 3 == 0 for i in range(300)])
    assert got["held_out/acc@0.5"] == pytest.approx(
        float(((iou >= 0.5) & ~missing)[held].double().mean())
    )
    rel = torch.tensor([i % 2 == 1 for i in range(300)])
    assert got["relational/miou"] == pytest.approx(float(iou[rel].mean()), abs=1e-6)


def test_unparseable_rec_output_is_a_counted_miss():
    m = RecBoxMetrics()
    true = torch.tensor([[10.0, 10.0, 50.0, 50.0], [0.0, 0.0, 20.0, 20.0]])
    pred = torch.tensor([[10.0, 10.0, 50.0, 50.0], [float("nan")] * 4])
    m.update(pred, true)
    got = m.compute()
    assert got["acc@0.5"] == 0.5 and got["miou"] == 0.5
    assert got["unparseable"] == 1 and got["n"] == 2
    assert m.latest(2)[1] == {"iou": 0.0, "parsed": False, "groups": ()}


def test_rec_misses_split_into_wrong_object_and_loose_box_hand_worked():
    # one scene: referent A = [0,0,10,10], other object B = [20,0,30,10]
    scene = [[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]]
    a = [0.0, 0.0, 10.0, 10.0]
    pred = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # exact: right object, IoU 1
            [0.0, 0.0, 10.0, 30.0],  # right object, loose: IoU 100/300 = 1/3
            [20.0, 0.0, 30.0, 10.0],  # on B: wrong object, IoU 0
            [5.0, 0.0, 25.0, 10.0],  # half on A, half on B: IoU 50/250 each, tie -> right
            [40.0, 40.0, 50.0, 50.0],  # touches nothing: not on the right object
            [float("nan")] * 4,  # no box: a miss, not on the right object
            [0.0, 0.0, 10.0, 10.0],  # a sample without its scene: outside the split-up
        ]
    )
    metas = [{"scene_boxes": scene}] * 6 + [{}]
    m = RecBoxMetrics((0.5,))
    m.update(pred, torch.tensor([a] * 7), metas)
    got = m.compute()
    assert got["n"] == 7 and got["acc@0.5"] == pytest.approx(2 / 7)
    assert got["right_object"] == pytest.approx(3 / 6)  # rows 0, 1, 3 of the six with a scene
    assert got["right_object_miou"] == pytest.approx((1 + 1 / 3 + 0.2) / 3)
    assert got["right_object_acc@0.5"] == pytest.approx(1 / 3)
    plain = RecBoxMetrics((0.5,))
    plain.update(pred[:1], torch.tensor([a]))
    assert "right_object" not in plain.compute()  # no scene listed: no split-up
    wrong = RecBoxMetrics((0.5,))
    wrong.update(pred[2:3], torch.tensor([a]), metas[:1])
    got = wrong.compute()
    assert got["right_object"] == 0.0 and "right_object_miou" not in got  # nothing to fit


def test_perfect_predictions_score_one():
    g = torch.Generator().manual_seed(1)
    boxes = _random_boxes(g, 20)
    rec = RecBoxMetrics()
    rec.update(boxes, boxes.clone())
    assert all(rec.compute()[k] == 1.0 for k in ("acc@0.5", "acc@0.75", "acc@0.9", "miou"))

    roc = ClassificationAccuracy()
    names = ["square", "traffic light", "an ellipse", "Circle."]
    roc.update(names, ["square", "traffic light", "ellipse", ["disc", "circle"]],
               [{"prompt_kind": k} for k in ("box", "point", "mask", "box")])  # fmt: skip
    got = roc.compute()
    assert got["acc"] == 1.0 and got["box/acc"] == got["point/acc"] == got["mask/acc"] == 1.0

    qa = SpatialQAMetrics()
    metas = [{"answer_type": "qualitative", "question_type": "left"},
             {"answer_type": "quantitative", "question_type": "distance", "value": 87},
             {"answer_type": "quantitative", "question_type": "count", "value": 3}]  # fmt: skip
    qa.update(["yes", "87 pixels", "3"], ["yes", "87 pixels", "3"], metas)
    got = qa.compute()
    assert got["acc"] == got["qual/acc"] == got["quant/acc"] == 1.0 and got["quant/mre"] == 0.0

    gpr = GroundedPR()
    truth = [("square", (1.0, 1.0, 9.0, 9.0)), ("circle", (20.0, 5.0, 40.0, 30.0))]
    gpr.update([[("a red square", truth[0][1]), ("a circle", truth[1][1])]], [truth])
    got = gpr.compute()
    assert got["precision"] == got["recall"] == got["f1"] == 1.0

    cap = CaptionScores(meteor=False)
    refs = [["a small red square on the left", "red square"], ["the big blue circle at the top"]]
    cap.update([refs[0][0], refs[1][0]], refs)
    got = cap.compute()
    assert got["bleu4"] == pytest.approx(1.0, abs=1e-6) and got["rouge_l"] == pytest.approx(1.0)


def _direct(preds, refs):
    """pycocoevalcap's scorers called directly on our fixed tokenisation."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [tokenized(r) for r in ref] for i, ref in enumerate(refs)}
    res = {i: [tokenized(p)] for i, p in enumerate(preds)}
    return (
        gts,
        res,
        {
            "bleu4": Bleu(4).compute_score(gts, res, verbose=0)[0][3],
            "rouge_l": float(Rouge().compute_score(gts, res)[0]),
            "cider": float(Cider().compute_score(gts, res)[0]),
        },
    )


def test_caption_scores_equal_pycocoevalcap():
    preds, refs = [p for p, _ in CAPTIONS], [r for _, r in CAPTIONS]
    assert tokenized("Two shapes: a heart, and a hexagon!") == "two shapes a heart and a hexagon"
    _, _, want = _direct(preds, refs)
    got, per_sample, unavailable = caption_scores(preds, refs, meteor=False)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-12)
    assert per_sample[3]["cider"] == 0.0 and per_sample[3]["bleu4"] < 1e-6
    assert unavailable["meteor"] == "METEOR not computed (meteor=false)"
    assert "SPICE" in unavailable["spice"]
    m = CaptionScores(meteor=False)
    m.update(preds, refs, keys=list(range(len(preds))))
    m.update(preds[:2], refs[:2], keys=[0, 1])  # duplicates (DDP padding) count once
    out = m.compute()
    assert out["cider"] == pytest.approx(want["cider"]) and out["n"] == 5
    assert out["unparseable"] == 1
    assert [k for k, _ in m.per_sample] == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_when_java_exists():
    ok, _ = caption.java_status()
    if not ok:
        pytest.skip("no Java runtime")
    preds, refs = [p for p, _ in CAPTIONS], [r for _, r in CAPTIONS]
    gts, res, want = _direct(preds, refs)
    got, per_sample, unavailable = caption_scores(preds, refs, meteor=True)
    assert "meteor" not in unavailable
    meteor, each = caption.meteor_scorer().compute_score(gts, res)
    assert got["meteor"] == pytest.approx(meteor, abs=1e-12)
    assert [s["meteor"] for s in per_sample] == pytest.approx(each)
    assert 0.0 < got["meteor"] < 1.0
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-12)


def test_missing_java_reports_meteor_unavailable(monkeypatch):
    monkeypatch.setattr(caption.shutil, "which", lambda name: None)
    preds, refs = [p for p, _ in CAPTIONS], [r for _, r in CAPTIONS]
    got, _, unavailable = caption_scores(preds, refs, meteor=True)
    assert "meteor" not in got
    assert set(got) == {"bleu4", "rouge_l", "cider"}
    msg = unavailable["meteor"]
    assert msg.startswith("METEOR unavailable: no Java runtime") and "\n" not in msg
    m = CaptionScores(meteor=True)
    m.update(preds, refs)
    assert "meteor" not in m.compute() and m.unavailable["meteor"] == msg


def test_grounded_precision_recall_hand_worked():
    truth = [("square", (10, 10, 50, 50)), ("circle", (60, 60, 100, 100)),
             ("triangle", (0, 0, 20, 20))]  # fmt: skip
    pred = [
        ("a red square", (12, 12, 50, 50)),  # IoU 0.9025 with the square
        ("a blue circle", (0, 0, 30, 30)),  # overlaps no circle
        ("a triangle", (0, 0, 20, 22)),  # IoU 0.909 with the triangle
        ("a square", (10, 10, 50, 50)),  # IoU 1.0: takes the square from the first mention
    ]
    m = GroundedPR()
    m.update([pred, []], [truth, [("star", (0, 0, 5, 5))]])
    rec = m.latest(2)
    assert sorted(rec[0]["matches"]) == [(2, 2), (3, 0)]
    got = m.compute()
    # 2 matches, 4 mentions, 4 objects; the second sample mentions nothing
    assert got["precision"] == pytest.approx(0.5) and got["recall"] == pytest.approx(0.5)
    assert got["f1"] == pytest.approx(0.5)
    assert got["unparseable"] == 1 and got["mentions"] == 4 and got["objects"] == 4
    single = GroundedPR()
    single.update([pred], [truth])
    assert single.compute()["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_mentions_pair_text_with_boxes_in_order():
    text = "a red square <box>, a blue circle [10,20,30,40] and a star <point>"
    boxes = [(1, 1, 2, 2), (3, 3, 4, 4), (5, 5, 5, 5)]
    assert [p for p, _ in mentions(text, boxes)] == ["a red square", "a blue circle", "a star"]
    assert mentions("nothing here", []) == []
    assert category_match("a small traffic light", "traffic light")
    assert not category_match("a squares", "square") and not category_match(
        "a light", "traffic light"
    )


def test_spatial_qa_relative_error_hand_numbers():
    assert parse_number("about 87 pixels") == 87.0 and parse_number("Three.") == 3.0
    assert parse_number("many") is None
    quant = [(100, "80 pixels"), (10, "25"), (0, "2 pixels"), (3, "three"), (5, "many")]
    qual = [("yes", "yes"), ("yes", "No."), ("the red square", "The red square"), ("no", "")]
    metas = [{"answer_type": "quantitative", "question_type": "distance", "value": v}
             for v, _ in quant]  # fmt: skip
    metas += [{"answer_type": "qualitative", "question_type": "left"} for _ in qual]
    m = SpatialQAMetrics()
    m.update([p for _, p in quant] + [p for _, p in qual],
             [f"{v} pixels" for v, _ in quant] + [a for a, _ in qual], metas)  # fmt: skip
    got = m.compute()
    # relative errors 0.2, 1.5, 2.0 (zero truth compared with 1), 0, 1 (unparseable)
    assert got["quant/mre"] == pytest.approx((0.2 + 1.5 + 2.0 + 0.0 + 1.0) / 5)
    assert got["quant/acc"] == pytest.approx(2 / 5)  # 80 of 100 and three of 3 in [v/2, 2v]
    assert got["qual/acc"] == pytest.approx(2 / 4)
    assert got["acc"] == pytest.approx(4 / 9)
    assert got["unparseable"] == 2 and got["n"] == 9
    assert got["distance/mre"] == pytest.approx(got["quant/mre"])
    assert math.isclose(got["left/acc"], 0.5)
