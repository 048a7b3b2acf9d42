"""``ckpt_path=last`` resumes only a run of the same task with a compatible config
(issue 15, item 1): checked on checkpoint files carrying saved configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from scalar.core.errors import UserError
from scalar.train.lineage import differences, resolve_resume


def _cfg(run_dir: Path, **over) -> OmegaConf:
    cfg = {
        "task_name": "train",
        "ckpt_path": "last",
        "resume": {"allow_config_change": False},
        "stage": {"name": "align", "module": {"picture_dir": str(run_dir)}},
        "model": {"_target_": "tiny", "dim": 64},
        "optim": {"lr": 1e-3},
        "paths": {"output_dir": str(run_dir)},
        "trainer": {"max_steps": 100},
    }
    for key, value in over.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return OmegaConf.create(cfg)


def _run(runs: Path, name: str, with_ckpt: bool = True, **over) -> Path:
    run = runs / name
    (run / "checkpoints").mkdir(parents=True)
    if with_ckpt:
        config = OmegaConf.to_container(_cfg(run, **over))
        torch.save({"global_step": 60, "scalar": {"config": config}}, run / "checkpoints/last.ckpt")
    return run


def test_last_refuses_a_newest_run_with_another_learning_rate(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "2024-01-01_00-00-00", **{"optim.lr": 5e-4})
    me = _run(runs, "2024-01-02_00-00-00", with_ckpt=False)  # killed before any checkpoint
    with pytest.raises(UserError) as err:
        resolve_resume(_cfg(me), me, runs)
    line = str(err.value)
    assert "\n" not in line
    assert "optim.lr: 0.0005 -> 0.001" in line and "resume.allow_config_change=true" in line
    # the override resumes it anyway
    path = resolve_resume(_cfg(me, **{"resume.allow_config_change": True}), me, runs)
    assert path == str(runs / "2024-01-01_00-00-00/checkpoints/last.ckpt")


def test_last_takes_the_newest_compatible_run(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "2024-01-01_00-00-00")  # same config
    _run(runs, "2024-01-02_00-00-00", **{"optim.lr": 5e-4})  # newer, different lr
    me = runs / "2024-01-03_00-00-00"
    # budgets and where the run is written may change: max_steps differs here
    got = resolve_resume(_cfg(me, **{"trainer.max_steps": 200}), me, runs)
    assert got == str(runs / "2024-01-01_00-00-00/checkpoints/last.ckpt")


def test_another_stage_or_model_is_never_resumed(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "a", **{"stage.name": "rl"})
    me = runs / "b"
    cfg = _cfg(me, **{"resume.allow_config_change": True})
    with pytest.raises(UserError, match=r"stage or model differs \(stage.name: 'rl' -> 'align'\)"):
        resolve_resume(cfg, me, runs)
    explicit = _cfg(me, ckpt_path=str(runs / "a"))  # a run folder given explicitly
    with pytest.raises(UserError, match="init_from="):
        resolve_resume(explicit, me, runs)


def test_nothing_to_resume_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    me = _run(runs, "only", with_ckpt=False)
    with pytest.raises(UserError, match="nothing to resume") as err:
        resolve_resume(_cfg(me), me, runs)
    assert "\n" not in str(err.value)


def test_differences_ignore_the_run_folder_and_free_keys():
    a = OmegaConf.to_container(_cfg(Path("/logs/train/runs/a")))
    b = OmegaConf.to_container(_cfg(Path("/logs/train/runs/b"), **{"trainer.max_steps": 7}))
    assert differences(a, b) == ([], [])  # picture_dir follows the run folder
    c = OmegaConf.to_container(_cfg(Path("/x"), **{"model.dim": 32}))
    assert differences(a, c)[0] == ["model.dim: 64 -> 32"]
