"""Atomic checkpoint writes, ``ckpt_path`` resolution and weight-only loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from scalar.train.checkpoint import (
    AtomicCheckpointIO,
    UserError,
    load_checkpoint_file,
    load_weights,
    resolve_ckpt_path,
)


def test_atomic_write_round_trips(tmp_path: Path):
    io = AtomicCheckpointIO()
    path = tmp_path / "sub" / "last.ckpt"
    io.save_checkpoint({"w": torch.arange(5), "step": 3}, path)
    loaded = io.load_checkpoint(path)
    assert torch.equal(loaded["w"], torch.arange(5)) and loaded["step"] == 3
    assert os.listdir(path.parent) == ["last.ckpt"]


def test_failed_write_keeps_old_checkpoint_and_leaves_no_partial_file(tmp_path: Path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"version": 1}, path)
    before = path.read_bytes()

    real_save = torch.save

    def crash_midway(obj, f, *a, **k):
        f.write(b"partial bytes of a checkpoint")  # something reached the disk...
        raise OSError("No space left on device")  # ...then the write failed

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"version": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before  # the previous checkpoint is intact
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temporary or partial file left
    assert torch.load(path, weights_only=True) == {"version": 1}

    # an interrupted write (KeyboardInterrupt) cleans up too
    def interrupted(obj, f, *a, **k):
        f.write(b"x" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"version": 3}, path)
    assert os.listdir(tmp_path) == ["last.ckpt"] and path.read_bytes() == before


def _touch_run(runs: Path, stamp: str) -> Path:
    ckpt = runs / stamp / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"stamp": stamp}, ckpt)
    return ckpt


def test_resolve_ckpt_path(tmp_path: Path):
    runs = tmp_path / "logs" / "train" / "runs"
    older = _touch_run(runs, "2024-01-01_00-00-00")
    newer = _touch_run(runs, "2024-01-02_00-00-00")
    (runs / "2024-01-03_00-00-00").mkdir()  # a newer run that saved nothing
    current = runs / "2024-01-04_00-00-00"
    assert resolve_ckpt_path(None, current, runs) is None
    assert resolve_ckpt_path("last", current, runs) == str(newer)
    assert resolve_ckpt_path(str(older.parent.parent), current, runs) == str(older)  # a run folder
    assert resolve_ckpt_path(str(older), current, runs) == str(older)
    with pytest.raises(UserError, match="checkpoint not found: .*missing.ckpt"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), current, runs)
    with pytest.raises(UserError, match="no checkpoints/last.ckpt"):
        resolve_ckpt_path(str(runs / "2024-01-03_00-00-00"), current, runs)
    with pytest.raises(UserError, match="ckpt_path=last"):
        resolve_ckpt_path("last", current, tmp_path / "elsewhere")


def test_load_weights_is_strict(tmp_path: Path):
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = {f"model.{k}": v for k, v in src.state_dict().items()}
    state["loss.nu"] = torch.ones(1)  # other parts of the module are ignored
    path = tmp_path / "a.ckpt"
    torch.save({"state_dict": state}, path)
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    assert load_weights(dst, path) == 4
    for a, b in zip(src.parameters(), dst.parameters()):
        assert torch.equal(a, b)
    other = torch.nn.Sequential(torch.nn.Linear(3, 4))
    with pytest.raises(UserError, match="2 unexpected"):
        load_weights(other, path)
    with pytest.raises(UserError, match="checkpoint not found"):
        load_weights(dst, tmp_path / "nope.ckpt")


def test_sharded_folders_are_checkpoints_for_resume_init_and_eval(tmp_path: Path):
    from tests.scale.test_consolidate import _sharded

    runs = tmp_path / "runs"
    run = runs / "2024-01-05_00-00-00"
    (run / "checkpoints").mkdir(parents=True)
    folder, model, optim = _sharded(run / "checkpoints")  # <run>/checkpoints/last.ckpt/
    assert folder == run / "checkpoints" / "last.ckpt" and folder.is_dir()
    later = runs / "2024-01-06_00-00-00"
    assert resolve_ckpt_path("last", run, runs) == str(folder)  # this run's own
    assert resolve_ckpt_path("last", later, runs) == str(folder)  # the newest earlier run
    assert resolve_ckpt_path(str(run), later, runs) == str(folder)  # a run folder
    assert resolve_ckpt_path(str(folder), later, runs) == str(folder)  # the folder itself
    meta = load_checkpoint_file(folder, weights=False)  # W&B id lookup: meta.pt only
    assert meta["global_step"] == 7 and "state_dict" not in meta
    full = load_checkpoint_file(folder)  # what eval.py ckpt=<folder> reads
    assert full["global_step"] == 7 and len(full["optimizer_states"]) == 1
    assert all(torch.equal(full["state_dict"][k], v) for k, v in model.items())
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7), torch.nn.Linear(7, 3))
    assert load_weights(net, folder) == len(model)  # init_from=<folder>
    assert torch.equal(net[2].bias, model["model.2.bias"])


def test_deepspeed_folder_is_found_and_names_its_converter(tmp_path: Path):
    folder = tmp_path / "last.ckpt"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "latest").write_text("checkpoint")
    assert resolve_ckpt_path(str(folder), tmp_path, tmp_path) == str(folder)  # Lightning resumes it
    with pytest.raises(UserError, match="DeepSpeed checkpoint folder.*convert_zero_checkpoint"):
        load_checkpoint_file(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no checkpoints/last.ckpt"):
        resolve_ckpt_path(str(empty), tmp_path, tmp_path)
