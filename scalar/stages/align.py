"""Stage 1, spatial-concept alignment: LM + box + region-concept contrastive training.

``AlignModule`` wraps the shared ``ScalarModel`` and an ``AlignLoss``; validation adds
greedy generation scored by :class:`scalar.eval.scoring.TaskScorer` (the scorer of
eval.py: REC Acc@t and mIoU on pixel boxes, referring object classification accuracy,
caption CIDEr-D / BLEU-4 / ROUGE-L), plus pictures of predicted vs true boxes.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from scalar.core.config import plain
from scalar.core.pictures import same_size, wandb_boxes
from scalar.eval.scoring import TASKS, Scored, TaskScorer, draw_rows, split_name, split_names
from scalar.stages.clipping import clip_gradients
from scalar.stages.nan_guard import (
    NAN_POLICIES,
    NanGuard,
    NonFiniteLossError,
    nan_guard_spec,
    sample_ids,
)

log = logging.getLogger(__name__)

EVAL_TASKS = ("rec", "roc", "caption")  # the default; any of scalar.eval.scoring.TASKS
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
        eval_tasks: tasks scored with generation (``scalar.eval.scoring.TASKS``).
        iou_threshold: REC hit threshold (logged ``val/rec/acc@<t>``, with ``miou``...).
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
        unknown = sorted(set(eval_tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"eval_tasks {unknown} not supported (choose from {TASKS})")
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
        self.scorer = TaskScorer(self.eval_tasks, [self.iou_threshold], records=False)
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
        self.scorer.reset(split_names(self.trainer, "val"))

    def on_test_epoch_start(self) -> None:
        self.scorer.reset(split_names(self.trainer, "test"))

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def split_prefix(self, stage: str, dataloader_idx: int) -> str:
        """``val`` for the first eval dataloader, ``val/<split>`` for the others."""
        if dataloader_idx == 0:
            return stage
        return f"{stage}/{split_name(self.trainer, stage, dataloader_idx)}"

    def _eval_step(self, stage: str, batch, batch_idx: int, dataloader_idx: int) -> None:
        if "input_ids" in batch:  # else every sample's image was unreadable (counted)
            terms = self.loss(self.model(batch), batch)
            # sync_dist: the epoch value averages every rank's share of the split
            opts = {"on_step": False, "on_epoch": True, "add_dataloader_idx": False,
                    "sync_dist": True}  # fmt: skip
            prefix = self.split_prefix(stage, dataloader_idx)
            self._log_terms(prefix, terms, len(batch["input_ids"]), **opts)
        sanity = self.trainer.sanity_checking
        if not self.do_generate or sanity and batch_idx > 0:
            return
        split = split_name(self.trainer, stage, dataloader_idx)
        scored = self.scorer.step(self.model, batch, split, self.max_new_tokens)
        first = stage == "val" and batch_idx == 0 and dataloader_idx == 0
        if scored is not None and first and self.pictures > 0 and not sanity:
            self._draw(scored)

    def _log_metrics(self, stage: str) -> None:
        if not self.do_generate or self.trainer.sanity_checking:
            self.scorer.reset()
            return
        names = split_names(self.trainer, stage)
        first = names[0] if names else "dl0"
        monitored = f"{stage}/rec/acc@{self.iou_threshold:g}"
        values: dict[str, float] = {}
        if "rec" in self.eval_tasks:
            values[monitored] = float("nan")  # always exists (nan when nothing was scored)
        for split, scores in self.scorer.finish().items():  # gathered from every rank
            prefix = stage if split == first else f"{stage}/{split}"
            for task, vals in scores.values.items():
                if not vals.get("n"):
                    continue
                for name, value in vals.items():
                    if isinstance(value, int | float) and math.isfinite(value):
                        values[f"{prefix}/{task}/{name}"] = float(value)
        for name, value in values.items():  # the same on every rank
            self.log(name, value, prog_bar=name == monitored, sync_dist=True)

    # ------------------------------------------------------------------ pictures
    def _draw(self, scored: Scored) -> None:
        root = Path(self.picture_dir or self.trainer.default_root_dir) / "pictures"
        # epoch{E}_step{S} while fitting; "validate" for a stand-alone (e.g. final) validation
        fitting = self.trainer.state.fn == "fit"
        stem = (
            f"epoch{self.current_epoch:03d}_step{self.global_step:06d}" if fitting else "validate"
        )
        paths = (root / f"{stem}_{k}.png" for k in range(self.pictures))
        drawn = draw_rows(scored, "rec", paths, self.image_mean, self.image_std)
        self.picture_paths.extend(p.path for p in drawn)
        self._log_wandb_images(
            [p.image for p in drawn],
            [wandb_boxes(p.pred01, p.true01, p.answer) for p in drawn],
            [p.prompt.split("<sep>")[0][-80:] for p in drawn],
        )

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
