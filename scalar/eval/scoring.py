"""One task scorer: the metrics of greedy answers, for training-time validation and eval.py.

:class:`TaskScorer` builds the task metrics of each split (one family, pixel boxes:
:mod:`scalar.metrics`), picks the rows of the scored tasks in a batch, decodes them
greedily, updates the metrics, keeps per-sample prediction records and the samples an
evaluation loader left out, and at the end of an epoch gives ``{split: {task: values}}``.
``AlignModule`` (and so ``RLModule``) validation and ``EvalModule`` both score with it, so
the number that picks the best checkpoint is the number eval.py reports for the same
samples. :func:`draw_rows` draws predicted vs true boxes of scored rows.

Metrics keep per-sample records keyed by ``(split, dataset index)`` (``batch["indices"]``
of the evaluation loaders) and gather them across ranks, so a distributed sampler's
padded duplicates count once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scalar.core.batch import row_image, rows_by_task, select_rows
from scalar.core.pictures import draw_boxes, image_for_sample
from scalar.eval.predictions import prediction_record, true_objects
from scalar.metrics.bootstrap import metric_intervals
from scalar.metrics.caption import CaptionScores
from scalar.metrics.classification import ClassificationAccuracy
from scalar.metrics.grounding import THRESHOLDS, GroundedPR, RecBoxMetrics, mentions
from scalar.metrics.keyed import KeyedRecordMetric
from scalar.metrics.spatial_qa import SpatialQAMetrics

log = logging.getLogger(__name__)
TASKS = ("rec", "roc", "caption", "spatial_qa", "grounded")
DRAWN = ("rec", "grounded")  # tasks whose predicted vs true boxes can be drawn
EMPTY = {"n": 0, "unparseable": 0}  # the values of a task without samples in a split


class PredictionLog(KeyedRecordMetric):
    """Per-sample records (predictions, left-out samples), gathered across ranks."""

    def update(self, records: list[dict[str, Any]], keys=None) -> None:
        self._add(keys, records)

    def compute(self) -> dict[str, int]:
        return {"n": len(self.unique())}


def split_names(trainer: Any, stage: str) -> list[str]:
    """The split of each evaluation dataloader of ``stage``, in ``dataloader_idx`` order."""
    dm = getattr(trainer, "datamodule", None)
    if dm is not None and hasattr(dm, "eval_split_names"):
        return list(dm.eval_split_names(stage))
    return []


def split_name(trainer: Any, stage: str, dataloader_idx: int) -> str:
    names = split_names(trainer, stage)
    return names[dataloader_idx] if dataloader_idx < len(names) else f"dl{dataloader_idx}"


@dataclass
class Scored:
    """One batch's scored rows: ``sub`` (the selected rows), ``gen`` (``generate``'s
    output for them) and the rows of ``sub`` per task."""

    sub: Mapping[str, Any]
    gen: dict[str, Any]
    rows: dict[str, list[int]]


@dataclass
class SplitScores:
    """What a split's epoch gives: ``values`` (``{task: metrics}``), ``predictions``
    (``{task: [record, ...]}`` in dataset order) and ``skipped`` (left-out samples)."""

    values: dict[str, dict[str, float | int]]
    predictions: dict[str, list[dict[str, Any]]]
    skipped: list[dict[str, Any]]


class TaskScorer:
    """Task metrics per split; see the module docstring.

    Args:
        tasks: tasks scored (rows of other tasks in a batch are ignored).
        iou_thresholds: REC accuracies reported (``acc@<t>``).
        meteor / spice: caption scores computed when possible (:mod:`scalar.metrics.caption`).
        records: keep per-sample prediction records (eval.py writes them).
        bootstrap: ``(resamples, seed)``: each task's figures get ``ci95``, 95% percentile
            bootstrap intervals (:mod:`scalar.metrics.bootstrap`); 0 resamples: none.
    """

    def __init__(
        self,
        tasks: Sequence[str] = TASKS,
        iou_thresholds: Sequence[float] = THRESHOLDS,
        meteor: bool = False,
        spice: bool = False,
        records: bool = True,
        bootstrap: tuple[int, int] = (0, 0),
    ):
        unknown = sorted(set(tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown eval task(s) {unknown}; valid: {list(TASKS)}")
        self.tasks = tuple(t for t in TASKS if t in set(tasks))
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.meteor, self.spice, self.records = bool(meteor), bool(spice), bool(records)
        self.resamples, self.seed = int(bootstrap[0]), int(bootstrap[1])
        self.unavailable: dict[str, str] = {}  # caption scores not computed: one-line reasons
        self.reset()

    def reset(self, splits: Iterable[str] = ()) -> None:
        """Forget every record; ``splits`` get their (empty) metrics now, in this order."""
        self._state: dict[str, dict[str, Any]] = {}
        self._counts: dict[str, int] = {}
        for split in splits:
            self.metrics(split)

    def metrics(self, split: str) -> dict[str, Any]:
        """The metrics of ``split`` (created on first use)."""
        if split not in self._state:
            self._state[split] = {
                "rec": RecBoxMetrics(self.iou_thresholds),
                "roc": ClassificationAccuracy(),
                "caption": CaptionScores(meteor=self.meteor, spice=self.spice),
                "spatial_qa": SpatialQAMetrics(),
                "grounded": GroundedPR(),
                "predictions": PredictionLog(),
                "skipped": PredictionLog(),
            }
        return self._state[split]

    @property
    def splits(self) -> list[str]:
        return list(self._state)

    # ------------------------------------------------------------------ batches
    def step(self, model: Any, batch: Mapping[str, Any], split: str, max_new_tokens: int):
        """Decode and score the batch's rows of the scored tasks; returns :class:`Scored`
        (``None`` when the batch has none). Samples the loader left out are recorded."""
        state = self.metrics(split)
        bad = batch.get("skipped_samples") or []
        if bad:
            recs = [{"index": i, "task": t, "reason": r, "image": p} for i, t, r, p in bad]
            state["skipped"].update(recs, keys=[(split, i) for i, *_ in bad])
        samples = batch.get("samples") or []
        groups = rows_by_task(samples, self.tasks)
        rows = sorted(r for rs in groups.values() for r in rs)
        if not rows or "prompt_input_ids" not in batch:
            return None
        if "indices" in batch:  # dataset positions: keys that make DDP duplicates count once
            indices, keyed = [int(i) for i in batch["indices"]], True
        else:  # a loader without them: running positions, nothing deduplicated
            start = self._counts.get(split, 0)
            indices, keyed = list(range(start, start + len(samples))), False
            self._counts[split] = start + len(samples)
        sub = select_rows(batch, rows) if len(rows) < len(samples) else batch
        gen = model.generate(sub, max_new_tokens=max_new_tokens, do_sample=False)
        where = {r: j for j, r in enumerate(rows)}
        scored = Scored(sub, gen, {t: [where[r] for r in rs] for t, rs in groups.items()})
        for task, task_rows in groups.items():
            js = scored.rows[task]
            keys = [(split, indices[r]) for r in task_rows] if keyed else None
            scores = score_rows(task, state[task], sub, gen, js, keys)
            if self.records:
                records = [
                    prediction_record(split, sub["samples"][j], indices[r], gen, j, score)
                    for j, r, score in zip(js, task_rows, scores)
                ]
                state["predictions"].update(records, keys=keys)
        return scored

    # ------------------------------------------------------------------ epoch end
    def finish(self) -> dict[str, SplitScores]:
        """Every split's scores (gathered across ranks; the same on each), then reset."""
        out: dict[str, SplitScores] = {}
        self.unavailable = {}
        for split in sorted(self._state):  # the same order on every rank (metrics gather)
            state = self._state[split]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                values = {t: dict(state[t].compute()) for t in self.tasks}
                for t in values if self.resamples > 0 else ():
                    with state[t].sync_context():
                        values[t]["ci95"] = metric_intervals(state[t], self.resamples, self.seed)
                with state["predictions"].sync_context():
                    preds = state["predictions"].unique()
                with state["skipped"].sync_context():
                    skipped = [r for _, r in sorted(state["skipped"].unique(),
                                                    key=lambda kr: kr[1]["index"])]  # fmt: skip
            cap = state["caption"]
            if "caption" in self.tasks:
                self.unavailable.update(cap.unavailable)
            per_caption = dict(cap.per_sample)
            by_task: dict[str, list[dict[str, Any]]] = {t: [] for t in self.tasks}
            for key, rec in sorted(preds, key=lambda kr: kr[1]["index"]):
                if rec["task"] == "caption" and key is not None and key in per_caption:
                    rec = {**rec, "score": per_caption[key]}
                by_task.setdefault(rec["task"], []).append(rec)
            for task, vals in values.items():
                if not vals.get("n", 0):
                    vals = {**EMPTY, "ci95": {}} if self.resamples > 0 else dict(EMPTY)
                vals["skipped"] = sum(r["task"] == task for r in skipped)
                values[task] = vals
            out[split] = SplitScores(values, by_task, skipped)
        self.reset()
        return out


def score_rows(task: str, metric, sub, gen, js: list[int], keys=None) -> list[dict[str, Any]]:
    """Update ``metric`` (of ``task``) with rows ``js`` of ``sub`` / ``gen``; returns the
    rows' per-sample scores. Boxes are pixels of the original image."""
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
    else:
        raise ValueError(f"unknown eval task {task!r}; valid: {list(TASKS)}")
    return metric.latest(len(js))


@dataclass
class Picture:
    """A drawn row: the file, the picture, and its boxes in [0, 1] (for W&B overlays)."""

    path: Path
    image: Any
    pred01: list[list[float]]
    true01: list[list[float]]
    answer: str
    prompt: str


def draw_rows(scored: Scored, task: str, paths: Iterable[Path], mean=None, std=None):
    """Draw rows of ``task`` (predicted red, true green, visual prompts blue), one per path
    of ``paths`` while rows last; rows whose image cannot be read are logged and passed."""
    sub, gen = scored.sub, scored.gen
    out: list[Picture] = []
    paths = iter(paths)
    for j in scored.rows.get(task, []):
        sample = sub["samples"][j]
        try:
            img = image_for_sample(sample, row_image(sub, j), mean, std)
        except (FileNotFoundError, OSError) as err:
            log.warning("no picture for %s: %s", sample.image.path, err)
            continue
        path = next(paths, None)
        if path is None:
            break
        w, h = float(sample.image.width), float(sample.image.height)
        true = [[b[0] / w, b[1] / h, b[2] / w, b[3] / h] for b in sample.target_boxes]
        given = [(b[0] / w, b[1] / h, b[2] / w, b[3] / h) for b in (r.box for r in sample.regions)]
        boxes = gen["boxes"][j][:1] if task == "rec" else gen["boxes"][j]
        pred = [list(map(float, b)) for b in boxes]
        answer = gen["texts"][j]
        pic = draw_boxes(img, pred, true, prompt=sample.prompt, answer=answer, given01=given)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pic.save(path)
        out.append(Picture(Path(path), pic, pred, true, answer, sample.prompt))
    return out
