"""Callbacks the training application relies on: exact resume, run info, SIGTERM save."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from scalar.train.checkpoint import LAST


def capture_rng() -> dict[str, Any]:
    """The Python, NumPy, torch CPU and CUDA generator states (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    keys = np.asarray(torch.as_tensor(keys).numpy(), dtype=np.uint32)
    np.random.set_state((kind, keys, int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [torch.as_tensor(s, dtype=torch.uint8).cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


class RngState(Callback):
    """Saves the RNG states in checkpoints and restores them right before training resumes.

    Restoring at ``on_train_start`` (after the sanity check, before the first batch)
    puts the generators where an uninterrupted run had them after the saved step.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "RngState"

    def state_dict(self) -> dict[str, Any]:
        return {"rng": capture_rng()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            restore_rng(self._pending)
            self._pending = None


class RunInfo(Callback):
    """Adds ``checkpoint['scalar']``: resolved config, package versions, W&B run id and the
    tokenizer's record (``scalar.train.tokenizer_record``)."""

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        versions: dict[str, Any] | None = None,
        tokenizer: dict[str, Any] | None = None,
    ):
        self.config, self.versions = config or {}, versions or {}
        self.tokenizer = tokenizer  # scalar.train.tokenizer_record.fingerprint of the run's

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint["scalar"] = {
            "config": self.config,
            "versions": self.versions,
            "wandb_run_id": wandb_run_id(trainer),
            "tokenizer": self.tokenizer,
        }


def wandb_run_id(trainer: L.Trainer) -> str | None:
    """The id of the run of an active W&B logger, if any."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.version
    return None


class SigtermCheckpoint(Callback):
    """On SIGTERM (Lightning stops after the current batch) write ``<dirpath>/last.ckpt``.

    Lightning turns SIGTERM into a ``SIGTERMException`` at the end of a training batch;
    this callback saves the full training state there, so ``ckpt_path=last`` continues
    exactly after that batch.
    """

    def __init__(self, dirpath: str | Path, filename: str = LAST):
        self.dirpath, self.filename = Path(dirpath), filename
        self.saved: Path | None = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.sanity_checking:
            return
        if trainer.state.fn != "fit":
            return
        path = self.dirpath / self.filename
        trainer.save_checkpoint(str(path))
        self.saved = path
        rank_zero_info(f"SIGTERM: saved {path}")
