"""The one task scorer: hand-worked numbers, and validation == eval.py on one checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from scalar.data.sample import Sample
from scalar.data.scene import ImageInfo
from scalar.eval.predictions import read_jsonl
from scalar.eval.scoring import TaskScorer, draw_rows, split_name, split_names
from scalar.metrics import cider_d
from scalar.train.evaluate import evaluate
from tests.conftest import CORPUS, TINY, compose_train
from tests.eval.conftest import TRAIN

W, H = 200, 100  # every test image: 200 x 100 pixels
IMAGE = ImageInfo(id=1, path="/nonexistent/scoring.png", width=W, height=H)


def _sample(task: str, target: str = "", box=None, **meta) -> Sample:
    return Sample(task, IMAGE, f"{task} prompt<sep>", target,
                  target_boxes=[box] if box else [], meta=meta)  # fmt: skip


class FakeModel:
    """``generate`` answering from a table keyed by the sample's prompt target."""

    def __init__(self, answers: dict[int, tuple[str, list]]):
        self.answers, self.seen = answers, []

    def generate(self, batch, max_new_tokens, do_sample):
        assert do_sample is False
        rows = [self.answers[id(s)] for s in batch["samples"]]
        self.seen.append([s.task for s in batch["samples"]])
        px = [[tuple(b) for b in boxes] for _, boxes in rows]
        return {"texts": [t for t, _ in rows], "boxes_px": px, "box_formats": [["text"] * len(b) for b in px],
                "boxes": [[(b[0] / W, b[1] / H, b[2] / W, b[3] / H) for b in bs] for bs in px]}  # fmt: skip


def _batch(samples: list[Sample], indices: list[int], skipped=()) -> dict:
    b = len(samples)
    return {"input_ids": torch.zeros(b, 2, dtype=torch.long),
            "prompt_input_ids": torch.zeros(b, 2, dtype=torch.long),
            "image_sizes": torch.tensor([[W, H]] * b), "images": torch.rand(1, 3, 8, 8),
            "image_index": torch.zeros(b, dtype=torch.long), "samples": samples,
            "indices": indices, "skipped_samples": list(skipped)}  # fmt: skip


def _hand_batch():
    rec = [
        _sample("rec", "", (20, 10, 120, 60), sent_kind="attribute"),  # predicted exactly: IoU 1
        _sample("rec", "", (0, 0, 100, 100), sent_kind="attribute"),  # half of it: IoU 0.5
        _sample("rec", "", (50, 50, 90, 90), sent_kind="relational"),  # no box: unparseable
    ]
    roc = [_sample("roc", "circle"), _sample("roc", "square", answers=["square", "box"])]
    caps = [_sample("caption", "", references=["a red circle", "red circle on the left"]),
            _sample("caption", "", references=["a blue square", "the square"])]  # fmt: skip
    other = _sample("spatial_qa", "yes")  # not a scored task here: never decoded
    answers = {
        id(rec[0]): ("<box>", [(20, 10, 120, 60)]),
        id(rec[1]): ("<box>", [(0, 0, 50, 100)]),
        id(rec[2]): ("no idea", []),
        id(roc[0]): ("A Circle.", []),
        id(roc[1]): ("", []),
        id(caps[0]): ("a red circle", []),
        id(caps[1]): ("a green star", []),
        id(other): ("no", []),
    }
    samples = [rec[0], other, rec[1], roc[0], caps[0], rec[2], roc[1], caps[1]]
    return samples, FakeModel(answers)


def test_scorer_numbers_by_hand_with_duplicates_and_left_out_samples():
    samples, model = _hand_batch()
    scorer = TaskScorer(["rec", "roc", "caption"], iou_thresholds=[0.5, 0.75])
    scorer.reset(["val"])
    first = _batch(samples[:5], [0, 1, 2, 3, 4], skipped=[(9, "rec", "unreadable", "x.png")])
    scorer.step(model, first, "val", max_new_tokens=4)
    # a distributed sampler's padding repeats index 0: it counts once
    scorer.step(model, _batch([*samples[5:], samples[0]], [5, 6, 7, 0]), "val", 4)
    assert "spatial_qa" not in sum(model.seen, [])  # rows of other tasks are not decoded

    got = scorer.finish()["val"]
    rec = got.values["rec"]
    assert rec["acc@0.5"] == pytest.approx(2 / 3) and rec["acc@0.75"] == pytest.approx(1 / 3)
    assert rec["miou"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert (rec["n"], rec["unparseable"], rec["skipped"]) == (3, 1, 1)
    assert rec["attribute/acc@0.75"] == 0.5 and rec["relational/acc@0.5"] == 0.0
    roc = got.values["roc"]
    assert (roc["acc"], roc["n"], roc["unparseable"], roc["skipped"]) == (0.5, 2, 1, 0)
    cap = got.values["caption"]
    want = cider_d(["a red circle", "a green star"], [samples[4].meta["references"],
                                                      samples[7].meta["references"]])  # fmt: skip
    assert cap["cider"] == pytest.approx(want[0]) and cap["n"] == 2
    assert set(cap) >= {"bleu4", "rouge_l", "cider"} and "meteor" not in cap  # meteor off

    # prediction records in dataset order, pixel boxes and per-sample scores
    recs = got.predictions["rec"]
    assert [r["index"] for r in recs] == [0, 2, 5]
    assert [r["score"]["iou"] for r in recs] == pytest.approx([1.0, 0.5, 0.0])
    assert recs[1]["boxes"] == [[0, 0, 50, 100]] and recs[1]["truth"]["box"] == [0, 0, 100, 100]
    caps = got.predictions["caption"]
    assert [c["score"]["cider"] for c in caps] == pytest.approx(want[1])
    assert got.skipped == [{"index": 9, "task": "rec", "reason": "unreadable", "image": "x.png"}]
    assert scorer.splits == []  # finish resets


def test_scorer_without_records_and_an_empty_task():
    samples, model = _hand_batch()
    scorer = TaskScorer(["rec", "grounded"], iou_thresholds=[0.5], records=False)
    scorer.step(model, _batch(samples[:3], [0, 1, 2]), "heldout", 4)
    got = scorer.finish()["heldout"]
    assert got.predictions == {"rec": [], "grounded": []}
    assert got.values["rec"]["acc@0.5"] == 1.0  # rows 0 (IoU 1) and 2 (IoU 0.5)
    assert got.values["grounded"] == {"n": 0, "unparseable": 0, "skipped": 0}
    with pytest.raises(ValueError, match="unknown eval task"):
        TaskScorer(["rec", "vqa"])


def test_split_names_and_pictures(tmp_path: Path):
    dm = SimpleNamespace(
        eval_split_names=lambda stage: ["val", "heldout"] if stage == "val" else []
    )
    trainer = SimpleNamespace(datamodule=dm)
    assert split_names(trainer, "val") == ["val", "heldout"]
    assert split_name(trainer, "val", 1) == "heldout" and split_name(trainer, "test", 0) == "dl0"
    assert split_names(SimpleNamespace(), "val") == []

    samples, model = _hand_batch()
    scorer = TaskScorer(["rec"], records=False)
    scored = scorer.step(model, _batch(samples, list(range(8))), "val", 4)
    assert scored.rows == {"rec": [0, 1, 2]}  # rows of the selected sub-batch
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    drawn = draw_rows(scored, "rec", paths)  # the file is missing: the batch image is drawn
    assert [p.path for p in drawn] == paths and all(p.is_file() for p in paths)
    assert drawn[0].true01[0] == pytest.approx([0.1, 0.1, 0.6, 0.6])
    assert drawn[1].pred01[0] == pytest.approx([0.0, 0.0, 0.25, 1.0])


@pytest.mark.slow  # trains the tiny model (module fixture), validates it and evaluates it
def test_validation_and_eval_give_identical_numbers(trained_run: Path, tiny_corpus, make_eval_cfg):
    """One checkpoint, the same samples: align validation (``trainer.validate``) and eval.py
    score with the same TaskScorer and give the same REC / ROC / caption values."""
    from scalar.train.run import build

    best = sorted((trained_run / "checkpoints").glob("best-*.ckpt"))[-1]
    run = trained_run.parent / "validate"
    cfg = compose_train([*TINY, f"paths.data_dir={tiny_corpus}", f"paths.output_dir={run}",
                         f"paths.log_dir={trained_run.parent}", *CORPUS, *TRAIN,
                         f"init_from={best}"])  # fmt: skip
    parts = build(cfg)  # init_from: the checkpoint's weights through the one weight loader
    module = parts["module"]
    finished = []
    finish = module.scorer.finish
    module.scorer.finish = lambda: finished.append(finish()) or finished[-1]
    logged = parts["trainer"].validate(module, datamodule=parts["datamodule"])
    logged = {k: v for part in logged for k, v in part.items()}
    val_scores = finished[-1]

    eval_cfg = make_eval_cfg(
        f"ckpt={best}", "splits=[val,heldout]", "tasks=[rec,roc,caption]",
        "data.tasks.val=[rec,roc,caption]", "data.splits.max_samples={val:64,heldout:8}",
        "batch_size=16", "max_new_tokens=8", "iou_thresholds=[0.25]",
    )  # fmt: skip
    results = evaluate(eval_cfg, overrides=[])
    for split in ("val", "heldout"):
        for task in ("rec", "roc", "caption"):
            ours, theirs = val_scores[split].values[task], results["splits"][split][task]
            intervals = theirs.pop("ci95")  # eval.py adds bootstrap intervals to the figures
            assert ours == theirs, (split, task)  # every value, exactly
            assert set(intervals) <= set(ours)
    rec = results["splits"]["val"]["rec"]
    assert rec["n"] > 0 and rec["acc@0.25"] > 0  # an informative comparison
    assert results["splits"]["val"]["roc"]["n"] > 0 and results["splits"]["val"]["caption"]["n"]
    # what validation logs (float32) is that number: the best-checkpoint metric is eval's
    assert logged["val/rec/acc@0.25"] == pytest.approx(rec["acc@0.25"], abs=1e-6)
    assert logged["val/caption/cider"] == pytest.approx(
        results["splits"]["val"]["caption"]["cider"], abs=1e-5
    )
    held = results["splits"]["heldout"]["rec"]
    if held["n"]:
        assert logged["val/heldout/rec/miou"] == pytest.approx(held["miou"], abs=1e-6)
    preds = read_jsonl(Path(eval_cfg.paths.output_dir) / "predictions" / "rec_val.jsonl")
    hits = [p["score"]["iou"] >= 0.25 and p["score"]["parsed"] for p in preds]
    assert val_scores["val"].values["rec"]["acc@0.25"] == sum(hits) / len(hits)
    saved = json.loads((Path(eval_cfg.paths.output_dir) / "results.json").read_text())
    assert not math.isnan(saved["splits"]["val"]["rec"]["miou"])
