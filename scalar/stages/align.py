"""Stage 1, spatial-concept alignment: LM + box + region-concept contrastive training.

``AlignModule`` wraps the shared ``ScalarModel`` and an ``AlignLoss``; validation adds
greedy generation for REC (Acc@0.5), referring object classification (accuracy) and
region captioning (CIDEr-D), plus pictures of predicted vs true boxes.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from scalar.core.batch import row_image, rows_by_task, select_rows
from scalar.core.config import plain
from scalar.core.pictures import draw_boxes, image_for_sample, same_size, wandb_boxes
from scalar.metrics import CaptionCIDEr, RecAccuracy, TextAccuracy
from scalar.stages.clipping import clip_gradients
from scalar.stages.nan_guard import (
    NAN_POLICIES,
    NanGuard,
    NonFiniteLossError,
    nan_guard_spec,
    sample_ids,
)

log = logging.getLogger(__name__)

EVAL_TASKS = ("rec", "roc", "caption")
__all__ = ["NAN_POLICIES", "AlignModule", "NonFiniteLossError", "sample_ids"]


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    keywords = getattr(fn, "keywords", {}) or {}
    return name in params and name not in keywords


class AlignModule(NanGuard, L.LightningModule):
    """Lightning module of the align stage.

    Args:
        model: the shared ``ScalarModel``.
        loss: an ``AlignLoss`` (``forward(out, batch)`` -> named terms incl. ``loss``).
        optimizer: partial taking parameter groups (``torch.optim.AdamW`` partial).
        scheduler: optional partial taking the optimizer (and ``total_steps`` when its
            signature has it and it is not set: filled from the trainer's estimate).
        trainable: ``model.set_trainable`` spec applied on top of the model's own.
        nan_guard: ``policy``: ``skip`` (drop the step, count it in ``train/nan_skips``) or
            ``stop``; ``max_skips`` consecutive skips stop the run; ``check_grads``: also apply
            the policy to non-finite gradients (one norm per step) (``scalar.stages.nan_guard``).
        generate: run greedy generation in validation/test for the task metrics.
        max_new_tokens: generation budget per row.
        eval_tasks: tasks scored with generation (rec, roc, caption).
        iou_threshold: REC hit threshold.
        pictures: images drawn on the first validation batch of each epoch (0: none), saved
            as ``pictures/epoch{E}_step{S}_{k}.png`` (``validate_{k}.png`` outside fitting).
        picture_dir: folder holding ``pictures/`` (default: ``trainer.default_root_dir``).
        image_mean / image_std: de-normalise batch images when the file is not readable.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        trainable: Mapping[str, bool | str] | None = None,
        nan_guard: Mapping[str, Any] | None = None,
        generate: bool = True,
        max_new_tokens: int = 32,
        eval_tasks: Sequence[str] = EVAL_TASKS,
        iou_threshold: float = 0.5,
        pictures: int = 4,
        picture_dir: str | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ):
        super().__init__()
        unknown = sorted(set(eval_tasks) - set(EVAL_TASKS))
        if unknown:
            raise ValueError(f"eval_tasks {unknown} not supported (choose from {EVAL_TASKS})")
        # plain containers: hyper-parameters land in checkpoints loadable with weights_only
        trainable = plain(trainable)
        eval_tasks, image_mean, image_std = (
            plain(eval_tasks),
            plain(image_mean),
            plain(image_std),
        )
        self.model, self.loss = model, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        if trainable:
            model.set_trainable(dict(trainable))
        self._init_nan_guard(**nan_guard_spec(plain(nan_guard)))
        self.do_generate = bool(generate)
        self.max_new_tokens, self.eval_tasks = int(max_new_tokens), tuple(eval_tasks)
        self.pictures, self.picture_dir = int(pictures), picture_dir
        self.image_mean, self.image_std = image_mean, image_std
        self.save_hyperparameters(ignore=["model", "loss", "optimizer", "scheduler"])
        self.iou_threshold = float(iou_threshold)
        self._metrics: dict[int, dict[str, Any]] = {}  # per eval dataloader: rec, roc, caption
        self.picture_paths: list[Path] = []

    # ------------------------------------------------------------------ training
    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return self.model(batch)

    def _log_terms(self, prefix: str, terms: Mapping[str, Tensor], batch_size: int, **kw) -> None:
        for name, value in terms.items():
            if not isinstance(value, Tensor) or value.numel() != 1:
                continue
            self.log(
                f"{prefix}/{name}",
                value.detach().float(),
                batch_size=batch_size,
                prog_bar=name == "loss",
                **kw,
            )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int):
        out = self.model(batch)
        terms = self.loss(out, batch)
        loss = terms["loss"]
        bs = len(batch["input_ids"])
        self._log_terms("train", terms, bs, on_step=True, on_epoch=False)  # nan when skipped
        if self._bad(not bool(torch.isfinite(loss.detach()).all())):
            return self._non_finite(batch, batch_idx, loss)
        return loss

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0):
        self._eval_step("val", batch, batch_idx, dataloader_idx)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0):
        self._eval_step("test", batch, batch_idx, dataloader_idx)

    def on_validation_epoch_start(self) -> None:
        self._metrics = {}

    def on_test_epoch_start(self) -> None:
        self._metrics = {}

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def metrics_for(self, dataloader_idx: int) -> dict[str, Any]:
        """The task metrics of one evaluation dataloader (created on first use)."""
        if dataloader_idx not in self._metrics:
            self._metrics[dataloader_idx] = {
                "rec": RecAccuracy(self.iou_threshold).to(self.device),
                "roc": TextAccuracy().to(self.device),
                "caption": CaptionCIDEr().to(self.device),
            }
        return self._metrics[dataloader_idx]

    def split_prefix(self, stage: str, dataloader_idx: int) -> str:
        """``val`` for the first eval dataloader, ``val/<split>`` for the others."""
        if dataloader_idx == 0:
            return stage
        names = []
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "eval_split_names"):
            names = dm.eval_split_names(stage)
        name = names[dataloader_idx] if dataloader_idx < len(names) else f"dl{dataloader_idx}"
        return f"{stage}/{name}"

    def _eval_step(self, stage: str, batch, batch_idx: int, dataloader_idx: int) -> None:
        if "input_ids" not in batch:  # every sample's image was unreadable (counted, left out)
            return
        bs = len(batch["input_ids"])
        prefix = self.split_prefix(stage, dataloader_idx)
        terms = self.loss(self.model(batch), batch)
        # sync_dist: the epoch value averages every rank's share of the split
        opts = {"on_step": False, "on_epoch": True, "add_dataloader_idx": False, "sync_dist": True}
        self._log_terms(prefix, terms, bs, **opts)
        if not self.do_generate or self.trainer.sanity_checking and batch_idx > 0:
            return
        groups = rows_by_task(batch.get("samples") or [], self.eval_tasks)
        rows = sorted(r for rs in groups.values() for r in rs)
        if not rows or "prompt_input_ids" not in batch:
            return
        sub = select_rows(batch, rows) if len(rows) < bs else batch
        gen = self.model.generate(sub, max_new_tokens=self.max_new_tokens, do_sample=False)
        where = {r: j for j, r in enumerate(rows)}
        self._score(self.metrics_for(dataloader_idx), sub, gen, groups, where)
        if (
            stage == "val"
            and batch_idx == 0
            and dataloader_idx == 0
            and self.pictures > 0
            and not self.trainer.sanity_checking
        ):
            self._draw(sub, gen, [where[r] for r in groups.get("rec", [])])

    def _score(
        self, metrics, sub, gen, groups: dict[str, list[int]], where: dict[int, int]
    ) -> None:
        samples = sub["samples"]
        if groups.get("rec"):
            js = [where[r] for r in groups["rec"]]
            pred = torch.full((len(js), 4), float("nan"))
            true = torch.zeros(len(js), 4)
            tb, tbatch = sub["target_boxes"].float().cpu(), sub["target_batch"].cpu()
            for k, j in enumerate(js):
                if gen["boxes"][j]:
                    pred[k] = torch.as_tensor(gen["boxes"][j][0], dtype=torch.float32)
                own = tb[tbatch == j]
                if len(own):
                    true[k] = own[0]
            metrics["rec"].update(pred, true, [samples[j].meta for j in js])
        if groups.get("roc"):
            js = [where[r] for r in groups["roc"]]
            answers = [samples[j].meta.get("answers") or samples[j].target for j in js]
            metrics["roc"].update(
                [gen["texts"][j] for j in js], answers, [samples[j].meta for j in js]
            )
        if groups.get("caption"):
            js = [where[r] for r in groups["caption"]]
            refs = [samples[j].meta.get("references") or [samples[j].target] for j in js]
            metrics["caption"].update([gen["texts"][j] for j in js], refs)

    def _log_metrics(self, stage: str) -> None:
        if not self.do_generate or self.trainer.sanity_checking:
            self._metrics = {}
            return
        values: dict[str, float] = {}
        if "rec" in self.eval_tasks:
            self.metrics_for(0)  # the monitored val/rec/acc@0.5 always exists (nan if unscored)
        for idx in sorted(self._metrics):
            prefix = self.split_prefix(stage, idx)
            for task, metric in self._metrics[idx].items():
                if metric.records:
                    values.update({f"{prefix}/{task}/{k}": v for k, v in metric.compute().items()})
                elif idx == 0 and task == "rec":
                    values[f"{prefix}/rec/{metric.name}"] = float("nan")
        for name, value in values.items():  # computed from every rank's records: the same
            self.log(name, float(value), prog_bar=name == f"{stage}/rec/acc@0.5", sync_dist=True)
        self._metrics = {}

    # ------------------------------------------------------------------ pictures
    def _draw(self, sub, gen, js: list[int]) -> None:
        js = js[: self.pictures]
        if not js:
            return
        root = Path(self.picture_dir or self.trainer.default_root_dir) / "pictures"
        root.mkdir(parents=True, exist_ok=True)
        tb, tbatch = sub["target_boxes"].float().cpu(), sub["target_batch"].cpu()
        # epoch{E}_step{S} while fitting; "validate" for a stand-alone (e.g. final) validation
        fitting = self.trainer.state.fn == "fit"
        stem = (
            f"epoch{self.current_epoch:03d}_step{self.global_step:06d}" if fitting else "validate"
        )
        images, boxes, captions = [], [], []
        for k, j in enumerate(js):
            sample = sub["samples"][j]
            try:
                img = image_for_sample(sample, row_image(sub, j), self.image_mean, self.image_std)
            except (FileNotFoundError, OSError) as err:
                log.warning("no picture for %s: %s", sample_ids({"samples": [sample]}), err)
                continue
            pred = [list(map(float, b)) for b in gen["boxes"][j][:1]]
            true = tb[tbatch == j][:1].tolist()
            text = sample.prompt.split("<sep>")[0][-80:]
            pic = draw_boxes(img, pred, true, prompt=sample.prompt, answer=gen["texts"][j])
            path = root / f"{stem}_{k}.png"
            pic.save(path)
            self.picture_paths.append(path)
            images.append(pic)
            boxes.append(wandb_boxes(pred, true, gen["texts"][j]))
            captions.append(text)
        self._log_wandb_images(images, boxes, captions)

    def _log_wandb_images(self, images, boxes, captions) -> None:
        from lightning.pytorch.loggers import WandbLogger

        for logger in self.loggers:
            if isinstance(logger, WandbLogger) and images:
                images = same_size(images)  # W&B shows a list of one size correctly
                logger.log_image(
                    "val/pictures", images, step=self.global_step, boxes=boxes, caption=captions
                )

    # ------------------------------------------------------------------ optimisation
    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self):
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("nothing to train: every parameter is frozen (check model.trainable)")
        decay = [p for _, p in named if p.ndim >= 2]
        no_decay = [p for _, p in named if p.ndim < 2]
        groups = [{"params": decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        if _accepts(self.scheduler_factory, "total_steps"):
            kwargs["total_steps"] = self.trainer.estimated_stepping_batches
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nan_skips"] = self.nan_skips

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nan_skips = int(checkpoint.get("nan_skips", 0))
