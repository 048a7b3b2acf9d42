"""End-to-end runs of the align stage through the real Hydra config (tiny model and corpus)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from scalar.stages.align import sample_ids
from scalar.train.run import build, train
from tests.conftest import ROOT, cli_overrides


class Recorder(L.Callback):
    """Per optimizer step: loss, a draw of the global RNG, the batch's sample ids."""

    def __init__(self, sigterm_at: int | None = None):
        self.steps: dict[int, dict] = {}
        self.sigterm_at = sigterm_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._rand = torch.rand(1).item()  # consumes the global RNG like dropout would

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.steps[trainer.global_step] = {
            "loss": float(loss),
            "rand": self._rand,
            "ids": sample_ids(batch),
        }
        if self.sigterm_at is not None and trainer.global_step == self.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)


def _fit(cfg, recorder: Recorder, ckpt_path=None):
    parts = build(cfg)
    trainer = parts["trainer"]
    trainer.callbacks.append(recorder)
    trainer.fit(
        parts["module"], datamodule=parts["datamodule"], ckpt_path=ckpt_path or parts["ckpt_path"]
    )
    return parts


def test_fast_dev_run_writes_run_records(make_cfg, tmp_path):
    cfg = make_cfg("debug=fdr")
    value = train(cfg)
    run = Path(cfg.paths.output_dir)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["_target_"] == "scalar.model.build.build_model"
    assert saved["paths"]["output_dir"] == str(run)  # resolved, not an interpolation
    env = json.loads((run / "env.json").read_text())
    assert env["seed"] == cfg.seed
    assert env["versions"]["torch"] == metadata.version("torch")
    assert env["versions"]["lightning"] == metadata.version("lightning")
    assert env["hardware"]["cpu_count"] == os.cpu_count()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "val/rec/acc@0.5" in metrics and "train/loss" in metrics
    assert 0.0 <= metrics["val/rec/acc@0.5"] <= 1.0
    assert value == metrics["val/rec/acc@0.5"]
    assert all("/" in k for k in metrics)  # flat 'stage/task/metric' keys
    assert list((run / "pictures").glob("epoch000_step000001_*.png"))  # drawn during fitting


def test_resume_mid_epoch_matches_uninterrupted_run(make_cfg, tmp_path):
    common = ["trainer.max_steps=6", "trainer.limit_val_batches=0", "validate=false"]
    periodic = [  # the uninterrupted run also keeps a checkpoint of every 3rd step
        "callbacks.model_checkpoint.every_n_train_steps=3",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.save_top_k=-1",
        "callbacks.model_checkpoint.filename='step{step}'",
    ]
    full = Recorder()
    _fit(make_cfg(*common, *periodic, run_dir=tmp_path / "full"), full)
    assert sorted(full.steps) == [1, 2, 3, 4, 5, 6]

    # 1) stopped by SIGTERM after step 3: the callback writes last.ckpt, the run exits
    first = Recorder(sigterm_at=3)
    cut = make_cfg(*common, run_dir=tmp_path / "cut")
    with pytest.raises(SystemExit):
        _fit(cut, first)
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)  # plain data only
    assert ckpt["global_step"] == 3
    assert ckpt["scalar"]["config"]["seed"] == cut.seed and ckpt["scalar"]["versions"]["torch"]
    assert "wandb_run_id" in ckpt["scalar"]
    second = Recorder()
    _fit(make_cfg(*common, f"ckpt_path={tmp_path / 'cut'}", run_dir=tmp_path / "resumed"), second)
    assert sorted(first.steps) == [1, 2, 3] and sorted(second.steps) == [4, 5, 6]

    # 2) resumed from the periodic step-3 checkpoint of the uninterrupted run
    third = Recorder()
    step3 = tmp_path / "full" / "checkpoints" / "step3.ckpt"
    _fit(make_cfg(*common, f"ckpt_path={step3}", run_dir=tmp_path / "resumed2"), third)
    assert sorted(third.steps) == [4, 5, 6]

    for joined in ({**first.steps, **second.steps}, {**first.steps, **third.steps}):
        for step, want in full.steps.items():
            got = joined[step]
            assert got["ids"] == want["ids"], step  # same batches, in the same order
            assert got["rand"] == want["rand"], step  # same RNG stream
            assert got["loss"] == pytest.approx(want["loss"], rel=0, abs=1e-6), step


def test_resume_across_an_epoch_end_matches_uninterrupted_run(make_cfg, tmp_path):
    """Resumed mid-epoch, the run finishes that epoch and the next ones on the same batches."""
    common = [
        "trainer.max_steps=9",
        "trainer.limit_val_batches=0",
        "validate=false",
        "data.loader.samples_per_epoch=24",  # 6 batches of 4 an epoch: step 9 is in the 2nd epoch
    ]
    full = Recorder()
    _fit(make_cfg(*common, run_dir=tmp_path / "full"), full)
    first = Recorder(sigterm_at=2)
    with pytest.raises(SystemExit):
        _fit(make_cfg(*common, run_dir=tmp_path / "cut"), first)
    second = Recorder()
    _fit(make_cfg(*common, f"ckpt_path={tmp_path / 'cut'}", run_dir=tmp_path / "res"), second)
    assert sorted(second.steps) == list(range(3, 10))
    joined = {**first.steps, **second.steps}
    for step, want in full.steps.items():
        assert joined[step]["ids"] == want["ids"], step
        assert joined[step]["loss"] == pytest.approx(want["loss"], rel=0, abs=1e-6), step


def test_ckpt_path_last_and_missing_checkpoint(make_cfg, tmp_path):
    from scalar.core.errors import UserError

    with pytest.raises(UserError, match="checkpoint not found: .*nope.ckpt"):
        build(make_cfg(f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    with pytest.raises(UserError, match="ckpt_path=last"):
        build(make_cfg("ckpt_path=last", run_dir=tmp_path / "logs" / "runs" / "b"))


def test_init_from_loads_weights_only(make_cfg, tmp_path):
    src = make_cfg("trainer.max_steps=2", "trainer.limit_val_batches=0", "validate=false",
                   run_dir=tmp_path / "src")  # fmt: skip
    _fit(src, Recorder())
    ckpt = tmp_path / "src" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    parts = build(make_cfg(f"init_from={ckpt}", run_dir=tmp_path / "dst"))
    state = parts["module"].model.state_dict()
    assert {f"model.{k}" for k in state} <= set(saved)
    for key, value in state.items():
        assert torch.equal(value, saved[f"model.{key}"]), key
    assert parts["ckpt_path"] is None  # weights only: step counters start at 0

    fresh = build(make_cfg(run_dir=tmp_path / "fresh"))["module"].model.state_dict()
    assert any(not torch.equal(fresh[k], state[k]) for k in state)  # it did load something


def _train_with_nan(make_cfg, tmp_path, policy: str, where: str = "loss", bad_step: int = 1):
    cfg = make_cfg("trainer.max_steps=3", "trainer.limit_val_batches=0", "validate=false",
                   f"nan_policy={policy}", run_dir=tmp_path / f"{policy}-{where}")  # fmt: skip
    parts = build(cfg)
    module = parts["module"]
    real = module.loss.forward
    seen = {}

    def poisoned(out, batch):
        terms = real(out, batch)
        if module.global_step == bad_step and "ids" not in seen:
            seen["ids"] = sample_ids(batch)
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    if where == "loss":
        module.loss.forward = poisoned
    else:  # a finite loss whose gradient turns non-finite on one parameter
        weight = next(p for p in module.model.parameters() if p.requires_grad and p.ndim == 2)
        weight.register_hook(lambda g: g * float("inf") if module.global_step == bad_step else g)
    snapshots = {}

    class Snap(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            snapshots[("before", batch_idx)] = [p.detach().clone() for p in pl_module.parameters()]

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots[("after", batch_idx)] = [p.detach().clone() for p in pl_module.parameters()]

    parts["trainer"].callbacks.append(Snap())
    parts["trainer"].fit(module, datamodule=parts["datamodule"])
    return module, snapshots, seen


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_nan_policy_skip_counts_and_leaves_weights(make_cfg, tmp_path, where):
    module, snaps, _ = _train_with_nan(make_cfg, tmp_path, "skip", where)
    assert module.nan_skips == 1
    assert module.trainer.callback_metrics["train/nan_skips"] == 1.0
    same = [torch.equal(a, b) for a, b in zip(snaps[("before", 1)], snaps[("after", 1)])]
    assert all(same)  # the poisoned step changed nothing
    moved = [torch.equal(a, b) for a, b in zip(snaps[("before", 2)], snaps[("after", 2)])]
    assert not all(moved)  # the next step trained again
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_nan_policy_stop_names_batch_and_samples(make_cfg, tmp_path):
    from scalar.stages.align import NonFiniteLossError

    with pytest.raises(NonFiniteLossError) as err:
        _train_with_nan(make_cfg, tmp_path, "stop")
    message = str(err.value)
    assert "at batch 1" in message and "nan_policy=skip" in message
    # the ids of the offending batch are listed
    ids = message.split("sample ids: ")[1]
    assert ids.startswith("[") and ":" in ids


def _run_cli(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_unknown_config_name_is_one_line_exit_2(tmp_path):
    proc = _run_cli(["model=nope"], tmp_path, timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "model 'nope'" in lines[0]
    names = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    assert all(n in lines[0] for n in names)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_multirun_makes_one_folder_per_job(tiny_corpus, tmp_path):
    logs = tmp_path / "logs"
    args = ["-m", "optim.lr=1e-3,2e-3", *cli_overrides(tiny_corpus, logs)]
    args = [a for a in args if not a.startswith("logger=")] + ["logger=default"]  # csv + W&B
    args += ["task_name=debug", "trainer.max_steps=1", "trainer.val_check_interval=1",
             "data.splits.max_samples={val:4,heldout:4}", "validate=false"]  # fmt: skip
    proc = _run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeps = list((logs / "debug" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    lrs = []
    for job in jobs:
        saved = yaml.safe_load((sweeps[0] / job / "config.yaml").read_text())
        lrs.append(saved["optim"]["lr"])
        assert saved["paths"]["output_dir"] == str(sweeps[0] / job)
        assert (sweeps[0] / job / "metrics.json").is_file()
    assert lrs == [1e-3, 2e-3]
    # one W&B run per job, each in its own folder
    runs = [list((sweeps[0] / job / "wandb").glob("offline-run-*")) for job in jobs]
    assert [len(r) for r in runs] == [1, 1] and runs[0][0].name[-8:] != runs[1][0].name[-8:]
