"""``BestCheckpoint``: Lightning's ``ModelCheckpoint`` that a resumed run does not fool.

* A resumed run writes to its own new run folder. Lightning then forgets the best score
  of the run it resumes ("dirpath has changed ... won't be reloaded") and the first
  validation after the resume becomes "best" whatever its score. Here the best
  checkpoint file(s) of the resumed run are linked (or copied) into the new folder and
  the best score, paths and top-k table are carried over, so best selection equals an
  uninterrupted run's.
* A non-finite monitored value (``val/loss`` nan after a diverged step) is never best.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


def link_or_copy(src: str, dst: str) -> None:
    """A hard link when both are on one file system (no copy of a large file), else a copy."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(dst):
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class BestCheckpoint(ModelCheckpoint):
    """See the module docstring; arguments are ``ModelCheckpoint``'s."""

    @property
    def state_key(self) -> str:
        # the same key as ModelCheckpoint's: checkpoints written by either restore into both
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def check_monitor_top_k(self, trainer, current=None) -> bool:
        if current is not None and not math.isfinite(float(current)):
            log.warning("%s is %s: this checkpoint is not a best candidate", self.monitor, current)
            return False
        return super().check_monitor_top_k(trainer, current)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and os.path.realpath(old) != os.path.realpath(self.dirpath):
            state_dict = self._carried(state_dict)
        super().load_state_dict(state_dict)

    def _carried(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state of the resumed run with its best files brought into this ``dirpath``."""
        assert self.dirpath is not None
        state = dict(state)
        moved: dict[str, str] = {}
        paths = set(state.get("best_k_models") or {}) | {state.get("best_model_path") or ""}
        for path in sorted(p for p in paths if p):
            if os.path.isfile(path):
                new = os.path.join(self.dirpath, os.path.basename(path))
                link_or_copy(path, new)
                moved[path] = new
            else:
                log.warning("the best checkpoint %s of the resumed run is gone", path)
        best_k = {moved[p]: v for p, v in (state.get("best_k_models") or {}).items() if p in moved}
        state["best_k_models"] = best_k
        state["best_model_path"] = moved.get(state.get("best_model_path") or "", "")
        if not state["best_model_path"]:
            state["best_model_score"] = None
        state["kth_best_model_path"] = moved.get(state.get("kth_best_model_path") or "", "")
        if not state["kth_best_model_path"] and best_k:
            pick = max if self.mode == "min" else min  # the worst kept one is the k-th
            state["kth_best_model_path"] = pick(best_k, key=lambda p: float(best_k[p]))
        state["last_model_path"] = ""  # never delete the resumed run's last.ckpt
        state["dirpath"] = self.dirpath
        if state["best_model_path"]:
            log.info("resumed run's best checkpoint carried over: %s", state["best_model_path"])
        return state
