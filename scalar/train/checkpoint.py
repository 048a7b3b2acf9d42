"""Checkpoint writing (atomic), locating (``ckpt_path=last``) and weight-only loading."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

CKPT_DIR = "checkpoints"
LAST = "last.ckpt"


class UserError(Exception):
    """A mistake in the command line or config: reported as one line, exit code 2."""


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside the target, then ``os.replace``.

    A crash or a full disk mid-write leaves the previous checkpoint intact and no
    partial file behind; the checkpoint is streamed to disk rather than buffered in
    memory first. Remote URLs use Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options, got {storage_options!r}"
            )
        path = str(path)
        if not _is_local(path):
            return super().save_checkpoint(checkpoint, path)
        path = path.removeprefix("file://")
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def latest_run_checkpoint(runs_dir: Path, exclude: Path | None = None) -> Path | None:
    """``last.ckpt`` of the most recent run folder under ``runs_dir`` (names are timestamps)."""
    if not runs_dir.is_dir():
        return None
    exclude = exclude.resolve() if exclude is not None else None
    for run in sorted((p for p in runs_dir.iterdir() if p.is_dir()), reverse=True):
        if exclude is not None and run.resolve() == exclude:
            continue
        cand = run / CKPT_DIR / LAST
        if cand.is_file():
            return cand
    return None


def resolve_ckpt_path(value: str | None, run_dir: Path, runs_dir: Path) -> str | None:
    """Turn ``ckpt_path`` into a checkpoint file, or ``None`` to start fresh.

    ``last``: this run's ``checkpoints/last.ckpt`` if it exists, else the newest run of
    the same task that has one. A directory: its ``checkpoints/last.ckpt`` (or
    ``last.ckpt``). A file: itself. Anything that does not exist is a :class:`UserError`.
    """
    if value in (None, "", "null", "none", "None"):
        return None
    value = str(value)
    if value == "last":
        own = run_dir / CKPT_DIR / LAST
        found = own if own.is_file() else latest_run_checkpoint(runs_dir, exclude=run_dir)
        if found is None:
            raise UserError(
                f"ckpt_path=last: no {CKPT_DIR}/{LAST} in {run_dir} or any run under {runs_dir}"
            )
        return str(found)
    if not _is_local(value):
        return value
    path = Path(value.removeprefix("file://")).expanduser()
    if path.is_dir():
        for cand in (path / CKPT_DIR / LAST, path / LAST):
            if cand.is_file():
                return str(cand)
        # sharded (FSDP / DeepSpeed) checkpoints are directories themselves
        if any(path.iterdir()) and not (path / CKPT_DIR).exists():
            return str(path)
        raise UserError(f"checkpoint not found: no {CKPT_DIR}/{LAST} in {path}")
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return str(path)


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU (memory-mapped when possible)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # not a zip-format file: plain load
        return torch.load(path, map_location="cpu", weights_only=False)


def load_model_weights(model: torch.nn.Module, path: str | Path, prefix: str = "model.") -> int:
    """Copy the ``prefix``-ed weights of a checkpoint into ``model`` (strict); returns a count.

    Only weights move: optimizer, schedule, step counters and data position start fresh.
    Missing or unexpected keys are a :class:`UserError` listing a few of them.
    """
    ckpt = load_checkpoint_file(path)
    state = ckpt.get("state_dict", ckpt)
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise UserError(f"init_from={path}: no '{prefix}*' weights in the checkpoint")
    result = model.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        miss, extra = result.missing_keys, result.unexpected_keys
        raise UserError(
            f"init_from={path}: weights do not match the model "
            f"({len(miss)} missing e.g. {miss[:3]}, {len(extra)} unexpected e.g. {extra[:3]})"
        )
    return len(weights)
