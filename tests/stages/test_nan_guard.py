"""nan_policy=skip: skipped steps are logged as skipped (never a stale loss), a run of
consecutive skips stops with one line, non-finite weights stop the run, and a nan
monitored value is never the best checkpoint (issue 15, item 3)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from scalar.stages.nan_guard import NonFiniteLossError
from scalar.train.best import BestCheckpoint
from scalar.train.run import build


def _poisoned_fit(make_cfg, tmp_path, bad_steps, *overrides):
    cfg = make_cfg("trainer.limit_val_batches=0", "validate=false", *overrides,
                   run_dir=tmp_path / "run")  # fmt: skip
    parts = build(cfg)
    module = parts["module"]
    real = module.loss.forward

    def poisoned(out, batch):
        terms = real(out, batch)
        if module.global_step in bad_steps:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    module.loss.forward = poisoned
    return parts, cfg


def _csv_rows(run: Path) -> list[dict]:
    (path,) = run.glob("csv/**/metrics.csv")
    with open(path) as f:
        return list(csv.DictReader(f))


def test_skipped_steps_are_logged_as_skipped_not_with_a_stale_loss(make_cfg, tmp_path):
    parts, cfg = _poisoned_fit(make_cfg, tmp_path, {1, 2}, "trainer.max_steps=4")
    parts["trainer"].fit(parts["module"], datamodule=parts["datamodule"])
    parts["trainer"].loggers[0].save()
    rows = [r for r in _csv_rows(Path(cfg.paths.output_dir)) if r.get("train/skipped")]
    by_step = {int(r["step"]): r for r in rows}
    assert sorted(by_step) == [0, 1, 2, 3]
    assert [float(by_step[s]["train/skipped"]) for s in range(4)] == [0.0, 1.0, 1.0, 0.0]
    # the skipped steps show their own (nan) loss, not step 0's finite value
    assert math.isnan(float(by_step[1]["train/loss"])) and math.isnan(
        float(by_step[2]["train/loss"])
    )
    assert math.isfinite(float(by_step[0]["train/loss"]))
    assert math.isfinite(float(by_step[3]["train/loss"]))
    assert parts["module"].nan_skips == 2


def test_consecutive_skips_stop_the_run_with_one_line(make_cfg, tmp_path):
    parts, _ = _poisoned_fit(make_cfg, tmp_path, set(range(1, 50)), "trainer.max_steps=30",
                             "nan_max_skips=3")  # fmt: skip
    with pytest.raises(NonFiniteLossError) as err:
        parts["trainer"].fit(parts["module"], datamodule=parts["datamodule"])
    message = str(err.value)
    assert "\n" not in message
    assert "3 consecutive steps skipped" in message and "nan_max_skips=3" in message
    assert parts["module"].nan_skips == 3  # step 0 trained, the next 3 were skipped


def test_non_finite_weights_stop_the_run(make_cfg, tmp_path):
    parts, _ = _poisoned_fit(make_cfg, tmp_path, set(), "trainer.max_steps=5")
    module = parts["module"]
    weight = next(p for p in module.model.parameters() if p.requires_grad and p.ndim == 2)
    real_step = module.on_before_optimizer_step

    def break_weights(optimizer):  # an update that leaves an inf in the weights at step 2
        real_step(optimizer)
        if module.global_step == 2:
            weight.grad = torch.zeros_like(weight)
            with torch.no_grad():
                weight[0, 0] = float("inf")

    module.on_before_optimizer_step = break_weights
    with pytest.raises(NonFiniteLossError, match="non-finite weights after global step 3"):
        parts["trainer"].fit(module, datamodule=parts["datamodule"])


def test_a_nan_score_is_never_the_best_checkpoint(tmp_path):
    cb = BestCheckpoint(dirpath=tmp_path, monitor="val/loss", mode="max", save_top_k=1)
    assert cb.check_monitor_top_k(None, torch.tensor(float("nan"))) is False
    assert cb.check_monitor_top_k(None, torch.tensor(float("inf"))) is False
    assert cb.check_monitor_top_k(None, torch.tensor(1.0)) is True  # no best yet
