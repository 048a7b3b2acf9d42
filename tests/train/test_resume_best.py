"""SIGTERM / SIGINT save and exit 143 / 130; a resumed run keeps the best checkpoint and the
step counter of the run it resumes; a step checkpoint exists before the first validation
(issue 15, items 2 and 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from scalar.train.errors import run_guarded
from scalar.train.run import build, train
from tests.conftest import ROOT, cli_overrides

HERE = "tests.train.test_resume_best"


class SignalAt(L.Callback):
    """Sends ``signum`` to this process after training step ``at`` (or, with
    ``in_validation``, during the validation that follows it)."""

    def __init__(self, signum: int = 15, at: int = 3, in_validation: bool = False):
        self.signum, self.at, self.in_validation = int(signum), int(at), in_validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self.in_validation and trainer.global_step == self.at:
            os.kill(os.getpid(), self.signum)

    def on_validation_batch_end(self, trainer, pl_module, *args, **kwargs):
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        if self.in_validation and fitting and trainer.global_step == self.at:
            self.in_validation = False
            os.kill(os.getpid(), self.signum)


COMMON = [
    "data.synthetic.difficulty=flat",  # the flat world with the soft-argmax head: its val/loss
    "model.spatial.box_head=softargmax",  # peaks at the first validation
    "trainer.max_steps=6",
    "trainer.val_check_interval=2",
    "stage.monitor=val/loss",
    "stage.monitor_mode=max",  # higher is "better": the best is an early step
    "stage.module.generate=false",
    "stage.module.pictures=0",
    "validate=false",
    "data.splits.max_samples.val=8",
    "data.splits.max_samples.heldout=4",
]


def _signal(signum: int, at: int, in_validation: bool = False) -> list[str]:
    return [f"+callbacks.kill._target_={HERE}.SignalAt", f"+callbacks.kill.signum={signum}",
            f"+callbacks.kill.at={at}", f"+callbacks.kill.in_validation={in_validation}"]  # fmt: skip


def _best(parts) -> tuple[str, float]:
    cb = parts["trainer"].checkpoint_callback
    return Path(cb.best_model_path).name, float(cb.best_model_score)


def _fit(cfg):
    parts = build(cfg)
    parts["trainer"].fit(
        parts["module"], datamodule=parts["datamodule"], ckpt_path=parts["ckpt_path"]
    )
    return parts


def test_best_after_sigterm_and_resume_equals_the_uninterrupted_run(make_cfg, tmp_path):
    full = _fit(make_cfg(*COMMON, run_dir=tmp_path / "full"))
    want = _best(full)
    assert "step000002" in want[0]  # val/loss is highest at the first validation
    cut = make_cfg(*COMMON, *_signal(15, 3), run_dir=tmp_path / "cut")
    with pytest.raises(SystemExit):  # Lightning's SIGTERMException
        _fit(cut)
    resumed = _fit(make_cfg(*COMMON, f"ckpt_path={tmp_path / 'cut'}", run_dir=tmp_path / "res"))
    name, score = _best(resumed)
    assert name == want[0] and score == pytest.approx(want[1], abs=1e-6)
    assert (tmp_path / "res" / "checkpoints" / name).is_file()  # carried into the new folder
    assert (tmp_path / "cut" / "checkpoints" / name).is_file()  # the old run keeps its own


def test_sigterm_during_validation_waits_for_it(make_cfg, tmp_path):
    cfg = make_cfg(*COMMON, *_signal(15, 2, in_validation=True), run_dir=tmp_path / "cut")
    with pytest.raises(SystemExit):
        _fit(cfg)
    ckpt = torch.load(
        tmp_path / "cut/checkpoints/last.ckpt", map_location="cpu", weights_only=False
    )
    assert ckpt["global_step"] == 2
    loop = ckpt["loops"]["fit_loop"]["epoch_loop.state_dict"]
    assert loop["_batches_that_stepped"] == 2  # logged steps continue at 2, not 1
    assert list((tmp_path / "cut/checkpoints").glob("best-*step000002.ckpt"))  # val finished


def test_sigint_saves_and_exits_130(make_cfg, tmp_path, capsys):
    cfg = make_cfg(*COMMON, "trainer.val_check_interval=10", *_signal(2, 3), run_dir=tmp_path / "r")
    with pytest.raises(SystemExit) as exit_:
        run_guarded(train, cfg)
    assert exit_.value.code == 130
    ckpt = torch.load(tmp_path / "r/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: stopped by SIGINT (exit 130)")


def test_step_checkpoint_before_the_first_validation(make_cfg, tmp_path):
    seen = {}

    class Peek(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            if trainer.global_step == 3 and last.is_file():
                seen["step"] = torch.load(last, map_location="cpu", weights_only=False)[
                    "global_step"
                ]

    cfg = make_cfg("trainer.max_steps=4", "trainer.limit_val_batches=0", "validate=false",
                   "callbacks.step_checkpoint.every_n_train_steps=2", run_dir=tmp_path / "r")  # fmt: skip
    parts = build(cfg)
    parts["trainer"].callbacks.append(Peek())
    parts["trainer"].fit(parts["module"], datamodule=parts["datamodule"])
    assert seen == {"step": 2}


def test_step_and_validation_checkpoints_share_one_last_ckpt(make_cfg, tmp_path):
    """The step checkpoint and the best/last callback both write last.ckpt: one file, the
    newest step (no stale ``last-v1.ckpt`` beside it)."""
    cfg = make_cfg(
        *COMMON, "callbacks.step_checkpoint.every_n_train_steps=1", run_dir=tmp_path / "r"
    )
    parts = _fit(cfg)
    folder = Path(parts["trainer"].default_root_dir) / "checkpoints"
    lasts = sorted(p.name for p in folder.glob("last*.ckpt"))
    assert lasts == ["last.ckpt"]
    assert (
        torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 6
    )


@pytest.mark.slow
def test_sigterm_exits_143_from_the_command_line(tiny_corpus, tmp_path):
    args = [*cli_overrides(tiny_corpus, tmp_path / "logs"), *COMMON, *_signal(15, 1)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (last,) = (tmp_path / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt")
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 1
