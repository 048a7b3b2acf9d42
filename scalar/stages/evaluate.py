"""``EvalModule``: one greedy decode per sample and the task metrics, per split.

Used with ``trainer.validate`` (or ``trainer.test``) so that it runs on one device or
many. The scoring is :class:`scalar.eval.scoring.TaskScorer`'s, the same as training-time
validation's. After the epoch, ``results`` (``{split: {task: metrics}}``), ``predictions``
(``{split: {task: [record, ...]}}``), ``skipped`` and ``unavailable`` hold everything
the run writes (see ``scalar.train.evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from scalar.eval.scoring import DRAWN, TASKS, TaskScorer, draw_rows, split_name, split_names
from scalar.metrics.grounding import THRESHOLDS

__all__ = ["DRAWN", "TASKS", "EvalModule"]


class EvalModule(L.LightningModule):
    """Evaluates ``model`` on the tasks present in the eval dataloaders.

    Args:
        model: the shared ``ScalarModel`` (weights already loaded).
        tasks: tasks scored (rows of other tasks in a batch are ignored).
        max_new_tokens: generation budget per sample (greedy, KV cache).
        iou_thresholds: REC accuracies reported.
        meteor / spice: compute these caption scores when possible (``scalar.metrics.caption``).
        pictures: predicted (red) vs true (green) boxes drawn per split and drawn task, with
            the prompt, the answer and the IoU (see ``scalar.core.pictures``).
        picture_dir: folder holding ``pictures/`` (default: ``trainer.default_root_dir``).
        image_mean / image_std: de-normalise batch images when the file is unreadable.
        bootstrap_resamples / bootstrap_seed: each task's figures get ``ci95`` (95%
            percentile bootstrap intervals, ``scalar.metrics.bootstrap``); 0: none.
    """

    def __init__(
        self,
        model: nn.Module,
        tasks: Sequence[str] = TASKS,
        max_new_tokens: int = 64,
        iou_thresholds: Sequence[float] = THRESHOLDS,
        meteor: bool = True,
        spice: bool = False,
        pictures: int = 4,
        picture_dir: str | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        bootstrap_resamples: int = 1000,
        bootstrap_seed: int = 0,
    ):
        super().__init__()
        self.model = model
        self.scorer = TaskScorer(tasks, iou_thresholds, meteor=meteor, spice=spice,
                                 bootstrap=(int(bootstrap_resamples), int(bootstrap_seed)))  # fmt: skip
        self.tasks = self.scorer.tasks
        self.max_new_tokens = int(max_new_tokens)
        self.pictures, self.picture_dir = int(pictures), picture_dir
        self.image_mean, self.image_std = image_mean, image_std
        self._drawn: dict[tuple[str, str], int] = {}
        self.results: dict[str, dict[str, dict[str, float | int]]] = {}
        self.predictions: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.skipped: dict[str, list[dict[str, Any]]] = {}
        self.unavailable: dict[str, str] = {}
        self.picture_paths: list[Path] = []

    def _start(self, stage: str) -> None:
        self.scorer.reset(split_names(self.trainer, stage))
        self._drawn = {}
        self.results, self.predictions, self.skipped, self.unavailable = {}, {}, {}, {}

    def on_validation_epoch_start(self) -> None:
        self._start("val")

    def on_test_epoch_start(self) -> None:
        self._start("test")

    # ------------------------------------------------------------------ steps
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0):
        self._step("val", batch, dataloader_idx)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0):
        self._step("test", batch, dataloader_idx)

    def _step(self, stage: str, batch: Mapping[str, Any], dataloader_idx: int) -> None:
        split = split_name(self.trainer, stage, dataloader_idx)
        scored = self.scorer.step(self.model, batch, split, self.max_new_tokens)
        if scored is None or self.global_rank != 0:
            return
        for task in DRAWN:
            done = self._drawn.get((split, task), 0)
            if done >= self.pictures or not scored.rows.get(task):
                continue
            root = Path(self.picture_dir or self.trainer.default_root_dir) / "pictures"
            paths = (root / f"{split}_{task}_{k}.png" for k in range(done, self.pictures))
            drawn = draw_rows(scored, task, paths, self.image_mean, self.image_std)
            self.picture_paths.extend(p.path for p in drawn)
            self._drawn[(split, task)] = done + len(drawn)

    # ------------------------------------------------------------------ epoch end
    def on_validation_epoch_end(self) -> None:
        self._finish()

    def on_test_epoch_end(self) -> None:
        self._finish()

    def _finish(self) -> None:
        for split, scores in self.scorer.finish().items():
            self.predictions[split] = scores.predictions
            self.skipped[split] = scores.skipped
            self.results[split] = scores.values
            for task, vals in scores.values.items():
                for name, value in vals.items():
                    if isinstance(value, int | float) and math.isfinite(value):
                        self.log(f"eval/{split}/{task}/{name}", float(value), rank_zero_only=True)
        self.unavailable.update(self.scorer.unavailable)
