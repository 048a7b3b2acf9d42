"""SIGTERM (preemption) and SIGINT (Ctrl-C): finish the step, save, exit non-zero.

Lightning turns SIGTERM into a stop at the end of the current training batch (and
:class:`scalar.train.callbacks.SigtermCheckpoint` saves ``last.ckpt`` there); Ctrl-C
raises ``KeyboardInterrupt`` wherever the process is and saves nothing. ``Interrupt``
handles both signals the same way:

* the signal is noted; the current training step completes;
* a signal that arrives during the validation that follows a step is held until that
  validation (and its checkpoint) has finished, so the saved state is the one after the
  validation: resumed, the run neither repeats nor loses it, and logged steps match an
  uninterrupted run;
* then ``last.ckpt`` is written and the process exits with 128 + the signal number
  (143 for SIGTERM, 130 for SIGINT: ``scalar.train.errors``), so that
  ``train.py && eval.py`` or a scheduler does not take it for a finished run.

A second Ctrl-C while waiting stops at once (``KeyboardInterrupt``, nothing saved).

``StepCheckpoint`` writes ``last.ckpt`` every ``every_n_train_steps`` optimizer steps,
so a run killed outright (SIGKILL, power) before its first validation loses little.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import RunningStage

from scalar.train.checkpoint import LAST

log = logging.getLogger(__name__)
_RECEIVED: list[int] = []  # the signal that stopped the last run of this process


def received_signal() -> int | None:
    """The signal (number) that stopped training in this process, if any."""
    return _RECEIVED[-1] if _RECEIVED else None


class Interrupt(Callback):
    """See the module docstring. Handlers are installed for the fit only."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._trainer: L.Trainer | None = None
        self.pending: int | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        trainer = self._trainer
        if self.pending is not None and signum == signal.SIGINT:
            self._restore()
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.pending = signum
        _RECEIVED.append(signum)
        log.warning("%s received: stopping after this step", signal.Signals(signum).name)
        if trainer is None or trainer.state.stage == RunningStage.VALIDATING:
            return  # held until on_validation_end
        previous = self._previous.get(signal.SIGTERM)
        if signum == signal.SIGTERM and callable(previous):
            previous(signum, frame)  # Lightning's own (stops DDP workers too)
        trainer._signal_connector.received_sigterm = True  # Lightning stops after this batch

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after Lightning installed its SIGTERM handler (which this one replaces and calls)
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        self._trainer, self.pending = trainer, None
        for sig in self.SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pending is not None and not trainer.sanity_checking:  # held: stop now
            trainer._signal_connector.received_sigterm = True

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
        self._trainer = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception) -> None:
        self._restore()
        self._trainer = None


class StepCheckpoint(Callback):
    """``<dirpath>/last.ckpt`` every ``every_n_train_steps`` optimizer steps (None: off)."""

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = 400):
        self.dirpath = Path(dirpath)
        self.every = int(every_n_train_steps) if every_n_train_steps else 0
        self._last_saved = -1

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self.every or step == 0 or step % self.every or step == self._last_saved:
            return
        if trainer.fit_loop.epoch_loop._should_accumulate():
            return  # mid-accumulation: global_step has not moved since the last save
        self._last_saved = step
        trainer.save_checkpoint(str(self.dirpath / LAST))
