"""End to end: train the tiny model, evaluate its checkpoint, and the command lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalar.core.errors import UserError
from scalar.eval.predictions import read_jsonl
from scalar.metrics.caption import caption_scores
from scalar.train.evaluate import evaluate
from tests.conftest import ROOT
from tests.eval.conftest import eval_args
from tests.paths import SYNTHETIC

TRAIN_VAL_TASKS = "data.tasks.val=[rec,roc,caption]"
TRAIN_CAPS = "data.splits.max_samples={val:64,heldout:8}"


@pytest.mark.slow  # trains the tiny model (module fixture, ~15-30 s)
def test_eval_reproduces_training_validation(trained_run: Path, make_eval_cfg):
    """Same samples (training's val_tasks and cap), same batches and decoding: same numbers.

    The training validation scored REC at IoU 0.25 (see ``TRAIN`` in conftest), where this
    briefly trained model already has hits; the evaluation reports 0.25 and 0.5.
    """
    train_metrics = json.loads((trained_run / "metrics.json").read_text())
    best = sorted((trained_run / "checkpoints").glob("best-*.ckpt"))[-1]
    cfg = make_eval_cfg(
        f"ckpt={best}", "split=val", "tasks=[rec,roc,caption]", TRAIN_VAL_TASKS, TRAIN_CAPS,
        "batch_size=16", "max_new_tokens=8", "iou_thresholds=[0.25,0.5]",
    )  # fmt: skip
    results = evaluate(cfg, overrides=[])
    run = Path(cfg.paths.output_dir)
    saved = json.loads((run / "results.json").read_text())
    rec = saved["splits"]["val"]["rec"]
    assert train_metrics["val/rec/acc@0.25"] > 0 and rec["miou"] > 0
    # Lightning logs float32: equal up to float32 rounding
    assert rec["acc@0.25"] == pytest.approx(train_metrics["val/rec/acc@0.25"], abs=1e-6)
    for kind in ("attribute", "relational", "ordinal"):
        key = f"val/rec/{kind}/acc@0.25"
        if key in train_metrics:
            assert rec[f"{kind}/acc@0.25"] == pytest.approx(train_metrics[key], abs=1e-6)
    assert results["splits"]["val"]["rec"]["acc@0.25"] == rec["acc@0.25"]
    assert saved["splits"]["val"]["roc"]["acc"] == pytest.approx(train_metrics["val/roc/acc"])
    assert saved["splits"]["val"]["caption"]["cider"] == pytest.approx(
        train_metrics["val/caption/cider"]
    )

    # every number is reproducible from the predictions file
    preds = read_jsonl(run / "predictions" / "rec_val.jsonl")
    assert len(preds) == rec["n"] == saved["counts"]["val"]["rec"]["n"] > 0
    for t in (0.25, 0.5):
        hits = [p["score"]["iou"] >= t and p["score"]["parsed"] for p in preds]
        assert rec[f"acc@{t:g}"] == pytest.approx(sum(hits) / len(hits))
    assert rec["unparseable"] == sum(not p["score"]["parsed"] for p in preds)
    assert [p["index"] for p in preds] == sorted(p["index"] for p in preds)
    first = preds[0]
    assert first["prompt"].startswith("where is ") and first["truth"]["box"][2] > 1  # pixels
    assert all(len(b) == 4 for p in preds for b in p["boxes"])
    roc = read_jsonl(run / "predictions" / "roc_val.jsonl")
    assert saved["splits"]["val"]["roc"]["acc"] == pytest.approx(
        sum(p["score"]["correct"] for p in roc) / len(roc)
    )
    assert {p["prompt_kind"] for p in roc} <= {"box", "point", "mask"}
    caps = read_jsonl(run / "predictions" / "caption_val.jsonl")
    again, _, _ = caption_scores(
        [p["output"] for p in caps], [p["truth"]["references"] for p in caps], meteor=False
    )
    assert saved["splits"]["val"]["caption"]["cider"] == pytest.approx(again["cider"])

    proto = saved["protocol"]
    assert proto["prompts"]["rec"] == "where is {expression}?"
    assert proto["decoding"]["greedy"] and proto["decoding"]["max_new_tokens"] == 8
    assert proto["coordinates"].startswith("xyxy pixels of the original image")
    assert proto["full_split"] is False  # this test reproduces a capped validation
    # 95% intervals: the figures recomputed on 1000 resamples of the samples (numpy here)
    iou = np.array([p["score"]["iou"] if p["score"]["parsed"] else 0.0 for p in preds])
    idx = np.random.default_rng(0).integers(0, len(iou), size=(1000, len(iou)))
    want = np.percentile((iou >= 0.25)[idx].mean(1), [2.5, 97.5])
    assert rec["ci95"]["acc@0.25"] == pytest.approx(want.tolist())
    assert rec["ci95"]["acc@0.25"][0] <= rec["acc@0.25"] <= rec["ci95"]["acc@0.25"][1]
    for task in ("roc", "caption"):
        values = saved["splits"]["val"][task]
        names = [k for k, v in values.items() if isinstance(v, float) and not k.endswith("/n")]
        assert names and set(names) == set(values["ci95"]), task
    assert saved["metrics"]["val/rec/acc@0.25/ci95"] == rec["ci95"]["acc@0.25"]
    assert proto["confidence_intervals"]["resamples"] == 1000
    md = (run / "results.md").read_text()
    lo, hi = (100 * v for v in rec["ci95"]["acc@0.25"])
    cell = f"| val | {100 * rec['acc@0.25']:.2f} [{lo:.2f}, {hi:.2f}] (n={rec['n']}) |"
    assert "## rec" in md and cell in md
    assert sorted(p.name for p in (run / "pictures").glob("val_rec_*.png")) == [
        "val_rec_0.png",
        "val_rec_1.png",
    ]
    assert (run / "env.json").is_file() and (run / "config.yaml").is_file()


@pytest.mark.slow  # trains the tiny model (module fixture, ~15-30 s)
def test_eval_all_tasks_full_split_with_ckpt_last(trained_run: Path, make_eval_cfg):
    """``ckpt=last`` finds the newest training run; every task scores on the full split."""
    logs = trained_run.parent.parent.parent
    cfg = make_eval_cfg("ckpt=last", "split=heldout", "max_new_tokens=6", log_dir=logs)
    results = evaluate(cfg, overrides=[])
    assert results["checkpoint"] == str(trained_run / "checkpoints" / "last.ckpt")
    assert results["protocol"]["full_split"] is True
    by_task = results["splits"]["heldout"]
    assert set(by_task) == {"rec", "roc", "caption", "spatial_qa", "grounded"}
    for task, values in by_task.items():
        assert values["n"] > 0, task
        assert 0 <= values["unparseable"] <= values["n"]
    assert "held_out/acc@0.5" in by_task["rec"]  # the held-out categories group
    assert "precision" in by_task["grounded"] and "quant/mre" in by_task["spatial_qa"]
    base = results["baselines"]["spatial_qa"]  # scored on exactly the evaluated samples
    assert (
        base["heldout"]["constant"]["n"]
        == base["heldout"]["prior"]["n"]
        == by_task["spatial_qa"]["n"]
    )
    assert base["fit_on"].startswith("train split")
    assert results["unavailable"]["meteor"] == "METEOR not computed (meteor=false)"
    run = Path(cfg.paths.output_dir)
    for task in by_task:
        rows = read_jsonl(run / "predictions" / f"{task}_heldout.jsonl")
        assert len(rows) == by_task[task]["n"]


def test_missing_ckpt_is_one_line_error(tiny_corpus: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "eval.py"), *eval_args(tiny_corpus, tmp_path / "logs")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "error: ckpt is required: ckpt=<file.ckpt>, ckpt=<training run folder> or ckpt=last"
    ]


@pytest.mark.parametrize(
    "overrides,expect",
    [
        (["ckpt={tmp}/nope.ckpt"], "checkpoint not found: "),
        (["ckpt=last"], "ckpt=last: no training run with checkpoints/last.ckpt in "),
        (["ckpt=last", "tasks=[rec,vqa]"], "unknown task(s) ['vqa']"),
        (["ckpt=last", "split=nope"], "unknown split(s) ['nope']; data.corpora has"),
    ],
)
def test_bad_eval_arguments_are_user_errors(make_eval_cfg, tmp_path, overrides, expect):
    cfg = make_eval_cfg(*(o.format(tmp=tmp_path) for o in overrides))
    with pytest.raises(UserError) as err:
        evaluate(cfg, overrides=[])
    assert expect in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow  # trains the tiny model (module fixture, ~15-30 s)
def test_predict_cli_prints_answer_and_saves_picture(
    trained_run: Path, tiny_corpus: Path, tmp_path: Path, capsys
):
    from PIL import Image

    from scalar.train.predict import main

    ckpt = trained_run / "checkpoints" / "last.ckpt"
    image = sorted((tiny_corpus / SYNTHETIC / "images").glob("*.png"))[0]
    out = tmp_path / "pred.png"
    common = [f"ckpt={ckpt}", f"image={image}", f"out={out}", "max_new_tokens=4"]
    assert main([*common, "prompt=where is the red circle?"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("answer: <box>")  # this run answers REC prompts with a box
    assert lines[1].startswith("box 1 (decoder, xyxy pixels): [") and lines[-1] == f"picture: {out}"
    with Image.open(out) as im, Image.open(image) as src:  # upscaled, a text panel below
        assert im.size[0] == round(src.size[0] * 512 / max(src.size)) and im.size[1] > 512
    assert main([*common, "prompt=what is <region>?", "box=[10,20,60,80]"]) == 0
    assert capsys.readouterr().out.startswith("answer: ")

    # a user mistake is one error line (exit 2)
    with pytest.raises(SystemExit) as stop:
        main([*common, "prompt=what is this?", "point=[5,5]"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "0 <region> placeholder(s) but 1 visual prompt(s)" in lines[0]
