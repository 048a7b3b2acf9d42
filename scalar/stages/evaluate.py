"""``EvalModule``: one greedy decode per sample and the task metrics, per split.

Used with ``trainer.validate`` (or ``trainer.test``) so that it runs on one device or
many: metrics keep per-sample records keyed by ``(split, dataset index)`` and gather
them across ranks, so a distributed sampler's padded duplicates count once. After the
epoch, ``results`` (``{split: {task: metrics}}``), ``predictions``
(``{split: {task: [record, ...]}}``), ``skipped`` and ``unavailable`` hold everything
the run writes (see ``scalar.train.evaluate``).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from scalar.core.batch import row_image, rows_by_task, select_rows
from scalar.core.pictures import draw_boxes, image_for_sample
from scalar.eval.predictions import prediction_record, true_objects
from scalar.metrics.bootstrap import metric_intervals
from scalar.metrics.captions_full import CaptionScores
from scalar.metrics.classification import ClassificationAccuracy
from scalar.metrics.grounding import THRESHOLDS, GroundedPR, RecBoxMetrics, mentions
from scalar.metrics.keyed import KeyedRecordMetric
from scalar.metrics.spatial_qa import SpatialQAMetrics

log = logging.getLogger(__name__)
TASKS = ("rec", "roc", "caption", "spatial_qa", "grounded")
DRAWN = ("rec", "grounded")  # tasks whose predicted vs true boxes are drawn


class PredictionLog(KeyedRecordMetric):
    """Per-sample prediction records (gathered across ranks like the metrics)."""

    def update(self, records: list[dict[str, Any]], keys=None) -> None:
        self._add(keys, records)

    def compute(self) -> dict[str, int]:
        return {"n": len(self.unique())}


class EvalModule(L.LightningModule):
    """Evaluates ``model`` on the tasks present in the eval dataloaders.

    Args:
        model: the shared ``ScalarModel`` (weights already loaded).
        tasks: tasks scored (rows of other tasks in a batch are ignored).
        max_new_tokens: generation budget per sample (greedy, KV cache).
        iou_thresholds: REC accuracies reported.
        meteor / spice: compute these caption scores when possible (see captions_full).
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
        unknown = sorted(set(tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown eval task(s) {unknown}; valid: {list(TASKS)}")
        self.model = model
        self.tasks = tuple(t for t in TASKS if t in set(tasks))
        self.max_new_tokens = int(max_new_tokens)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.meteor, self.spice = bool(meteor), bool(spice)
        self.pictures, self.picture_dir = int(pictures), picture_dir
        self.image_mean, self.image_std = image_mean, image_std
        self.bootstrap_resamples = int(bootstrap_resamples)
        self.bootstrap_seed = int(bootstrap_seed)
        self._state: dict[str, dict[str, Any]] = {}
        self._drawn: dict[tuple[str, str], int] = {}
        self._counts: dict[str, int] = {}
        self.results: dict[str, dict[str, dict[str, float | int]]] = {}
        self.predictions: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.skipped: dict[str, list[dict[str, Any]]] = {}
        self.unavailable: dict[str, str] = {}
        self.picture_paths: list[Path] = []

    # ------------------------------------------------------------------ state
    def _new_state(self) -> dict[str, Any]:
        return {
            "rec": RecBoxMetrics(self.iou_thresholds),
            "roc": ClassificationAccuracy(),
            "caption": CaptionScores(meteor=self.meteor, spice=self.spice),
            "spatial_qa": SpatialQAMetrics(),
            "grounded": GroundedPR(),
            "predictions": PredictionLog(),
            "skipped": PredictionLog(),
        }

    def split_names(self, stage: str) -> list[str]:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "eval_split_names"):
            return list(dm.eval_split_names(stage))
        return []

    def split_name(self, stage: str, dataloader_idx: int) -> str:
        names = self.split_names(stage)
        return names[dataloader_idx] if dataloader_idx < len(names) else f"dl{dataloader_idx}"

    def _start(self, stage: str) -> None:
        self._state = {name: self._new_state() for name in self.split_names(stage)}
        self._drawn, self._counts = {}, {}
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
        split = self.split_name(stage, dataloader_idx)
        if split not in self._state:
            self._state[split] = self._new_state()
        state = self._state[split]
        bad = batch.get("skipped_samples") or []
        if bad:
            recs = [{"index": i, "task": t, "reason": r, "image": p} for i, t, r, p in bad]
            state["skipped"].update(recs, keys=[(split, i) for i, *_ in bad])
        samples = batch.get("samples") or []
        groups = rows_by_task(samples, self.tasks)
        rows = sorted(r for rs in groups.values() for r in rs)
        if not rows:
            return
        if "indices" in batch:  # dataset positions: keys that make DDP duplicates count once
            indices, keyed = list(batch["indices"]), True
        else:  # a loader without them: running positions, nothing deduplicated
            start = self._counts.get(split, 0)
            indices, keyed = list(range(start, start + len(samples))), False
            self._counts[split] = start + len(samples)
        sub = select_rows(batch, rows) if len(rows) < len(samples) else batch
        gen = self.model.generate(sub, max_new_tokens=self.max_new_tokens, do_sample=False)
        where = {r: j for j, r in enumerate(rows)}
        for task, task_rows in groups.items():
            js = [where[r] for r in task_rows]
            keys = [(split, indices[r]) for r in task_rows] if keyed else None
            scores = self._score(task, state[task], sub, gen, js, keys)
            records = [
                prediction_record(split, sub["samples"][j], indices[r], gen, j, score)
                for j, r, score in zip(js, task_rows, scores)
            ]
            state["predictions"].update(records, keys=keys)
            if task in DRAWN and self.global_rank == 0:
                self._draw(split, task, sub, gen, js)

    def _score(self, task: str, metric, sub, gen, js: list[int], keys) -> list[dict[str, Any]]:
        samples = [sub["samples"][j] for j in js]
        metas = [s.meta for s in samples]
        texts = [gen["texts"][j] for j in js]
        if task == "rec":
            pred = torch.full((len(js), 4), float("nan"))
            for k, j in enumerate(js):
                if gen["boxes_px"][j]:
                    pred[k] = torch.as_tensor(gen["boxes_px"][j][0], dtype=torch.float32)
            true = torch.tensor([list(s.target_boxes[0]) for s in samples], dtype=torch.float32)
            metric.update(pred, true, metas, keys)
        elif task == "roc":
            answers = [s.meta.get("answers") or s.target for s in samples]
            metric.update(texts, answers, metas, keys)
        elif task == "caption":
            refs = [s.meta.get("references") or [s.target] for s in samples]
            metric.update(texts, refs, metas, keys)
        elif task == "spatial_qa":
            metric.update(texts, [s.target for s in samples], metas, keys)
        elif task == "grounded":
            pred = [mentions(gen["texts"][j], gen["boxes_px"][j]) for j in js]
            metric.update(pred, [true_objects(s) for s in samples], metas, keys)
        return metric.latest(len(js))

    # ------------------------------------------------------------------ epoch end
    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_end(self) -> None:
        self._finish("test")

    def _finish(self, stage: str) -> None:
        for split in sorted(self._state):  # same order on every rank (metrics gather)
            state = self._state[split]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                values = {t: state[t].compute() for t in TASKS if t in self.tasks}
                for t in values if self.bootstrap_resamples > 0 else ():
                    with state[t].sync_context():
                        values[t]["ci95"] = metric_intervals(
                            state[t], self.bootstrap_resamples, self.bootstrap_seed
                        )
                with state["predictions"].sync_context():
                    preds = state["predictions"].unique()
                with state["skipped"].sync_context():
                    skipped = state["skipped"].unique()
            cap = state["caption"]
            self.unavailable.update(cap.unavailable)
            per_caption = dict(cap.per_sample)
            by_task: dict[str, list[dict[str, Any]]] = {t: [] for t in self.tasks}
            for key, rec in sorted(preds, key=lambda kr: kr[1]["index"]):
                if rec["task"] == "caption" and key is not None and key in per_caption:
                    rec = {**rec, "score": per_caption[key]}
                by_task.setdefault(rec["task"], []).append(rec)
            self.predictions[split] = by_task
            self.skipped[split] = [r for _, r in sorted(skipped, key=lambda kr: kr[1]["index"])]
            self.results[split] = {}
            for task, vals in values.items():
                vals = vals if vals.get("n", 0) else {"n": 0, "unparseable": 0, "ci95": {}}
                vals["skipped"] = sum(r["task"] == task for r in self.skipped[split])
                self.results[split][task] = vals
                for name, value in vals.items():
                    if isinstance(value, int | float) and math.isfinite(value):
                        self.log(f"eval/{split}/{task}/{name}", float(value), rank_zero_only=True)
        self._state = {}

    # ------------------------------------------------------------------ pictures
    def _draw(self, split: str, task: str, sub, gen, js: list[int]) -> None:
        done = self._drawn.get((split, task), 0)
        if done >= self.pictures:
            return
        root = Path(self.picture_dir or self.trainer.default_root_dir) / "pictures"
        root.mkdir(parents=True, exist_ok=True)
        for j in js[: self.pictures - done]:
            sample = sub["samples"][j]
            w, h = float(sample.image.width), float(sample.image.height)
            try:
                img = image_for_sample(sample, row_image(sub, j), self.image_mean, self.image_std)
            except (FileNotFoundError, OSError) as err:
                log.warning("no picture for %s: %s", sample.image.path, err)
                continue
            true = [(b[0] / w, b[1] / h, b[2] / w, b[3] / h) for b in sample.target_boxes]
            given = [
                (b[0] / w, b[1] / h, b[2] / w, b[3] / h) for b in (r.box for r in sample.regions)
            ]
            path = root / f"{split}_{task}_{done}.png"
            pred = gen["boxes"][j][:1] if task == "rec" else gen["boxes"][j]
            pic = draw_boxes(
                img, pred, true, prompt=sample.prompt, answer=gen["texts"][j], given01=given
            )
            pic.save(path)
            self.picture_paths.append(path)
            done += 1
        self._drawn[(split, task)] = done
