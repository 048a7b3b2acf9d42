"""Atomic checkpoint writes, ``ckpt_path`` resolution and weight-only loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from scalar.train.checkpoint import (
    AtomicCheckpointIO,
    UserError,
    load_model_weights,
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


def test_load_model_weights_is_strict(tmp_path: Path):
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = {f"model.{k}": v for k, v in src.state_dict().items()}
    state["loss.nu"] = torch.ones(1)  # other parts of the module are ignored
    path = tmp_path / "a.ckpt"
    torch.save({"state_dict": state}, path)
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    assert load_model_weights(dst, path) == 4
    for a, b in zip(src.parameters(), dst.parameters()):
        assert torch.equal(a, b)
    other = torch.nn.Sequential(torch.nn.Linear(3, 4))
    with pytest.raises(UserError, match="2 unexpected"):
        load_model_weights(other, path)
    with pytest.raises(UserError, match="checkpoint not found"):
        load_model_weights(dst, tmp_path / "nope.ckpt")
