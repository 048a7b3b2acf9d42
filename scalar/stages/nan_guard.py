"""Non-finite losses, gradients and weights in training: ``NanGuard``, a LightningModule mixin.

``nan_policy=stop`` stops at the first non-finite loss or gradient with one line naming
the batch and its samples. ``nan_policy=skip`` skips the step (no optimizer update) and
counts it:

* every step logs ``train/skipped`` (1 or 0); the skipped step's own terms are logged
  as they are (nan), never the last finite values;
* after ``nan_max_skips`` consecutive skipped steps the run stops with one line naming
  the batches (0: no limit): a diverged run does not spin on to its end;
* weights that become non-finite stop the run whatever the policy: nothing after that
  step could be trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

NAN_POLICIES = ("skip", "stop")


class NonFiniteLossError(FloatingPointError):
    """A run stopped by non-finite values (loss, gradients or weights): exit code 1."""


def sample_ids(batch: Mapping[str, Any]) -> list[str]:
    """Readable ids of a batch's samples (task:image/object-or-ref-or-region)."""
    out = []
    for s in batch.get("samples") or []:
        meta = getattr(s, "meta", {}) or {}
        if "id" in meta:
            out.append(str(meta["id"]))
            continue
        image = meta.get("image_id", getattr(getattr(s, "image", None), "id", "?"))
        item = next((meta[k] for k in ("ref_id", "object_id", "region_id") if k in meta), None)
        out.append(f"{getattr(s, 'task', '?')}:{image}" + (f"/{item}" if item is not None else ""))
    return out


NAN_GUARD = {"policy": "skip", "max_skips": 10, "check_grads": True}  # the keys, with defaults


def nan_guard_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stage's ``nan_guard`` block (``policy``, ``max_skips``, ``check_grads``; absent keys
    take ``NAN_GUARD``'s defaults) as keywords of ``NanGuard._init_nan_guard``."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(NAN_GUARD))
    if unknown:
        raise ValueError(
            f"stage.module.nan_guard: unknown key(s) {unknown}; valid: {list(NAN_GUARD)}"
        )
    return {**NAN_GUARD, **spec}


class NanGuard:
    """Mixin: call ``_init_nan_guard`` in ``__init__``; ``_non_finite`` from the step."""

    def _init_nan_guard(self, policy: str, check_grads: bool, max_skips: int) -> None:
        if policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {policy!r}")
        if int(max_skips) < 0:
            raise ValueError(f"nan_max_skips must be >= 0, got {max_skips}")
        self.nan_policy, self.check_grads = policy, bool(check_grads)
        self.nan_max_skips = int(max_skips)
        self.nan_skips = 0  # skipped steps in the whole run (saved in checkpoints)
        self._streak: list[str] = []  # the consecutive skipped batches so far
        self._skip_step = False  # DDP: this rank ran backward on a zero loss, no update
        self._skipped_now = False

    def _bad(self, flag: bool) -> bool:
        """Agree across ranks: any rank's non-finite value makes every rank skip."""
        if self.trainer.world_size > 1:
            return bool(self.trainer.strategy.reduce_boolean_decision(flag, all=False))
        return flag

    def _count_skip(self, what: str) -> None:
        self.nan_skips += 1
        self._skipped_now = True
        self._streak.append(what)
        log.warning("skipped %s", what)
        self.log("train/nan_skips", float(self.nan_skips), on_step=True, batch_size=1)
        if self.nan_max_skips and len(self._streak) >= self.nan_max_skips:
            shown = "; ".join(self._streak[-3:])
            raise NonFiniteLossError(
                f"{len(self._streak)} consecutive steps skipped for non-finite values "
                f"(nan_max_skips={self.nan_max_skips}), the last: {shown}; "
                "the run diverged: lower optim.lr or check the data"
            )

    def _non_finite(self, batch: Mapping[str, Any], batch_idx: int, loss: Tensor):
        ids = sample_ids(batch)
        value = float(loss.detach().float().mean())
        if self.nan_policy == "stop":
            raise NonFiniteLossError(
                f"non-finite training loss ({value}) at batch {batch_idx} (epoch "
                f"{self.current_epoch}, global step {self.global_step}); sample ids: {ids} "
                "(nan_policy=skip skips such steps)"
            )
        self._count_skip(f"batch {batch_idx} (loss {value}, samples {ids[:4]})")
        if self.trainer.world_size == 1:
            return None  # Lightning skips backward and the optimizer step
        # every rank must run backward under DDP: a zero loss, and no step (see below)
        self._skip_step = True
        params = [p for p in self.parameters() if p.requires_grad]
        return sum((p.reshape(-1)[:1] * 0.0).sum() for p in params)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip steps whose gradients are non-finite (and DDP steps marked as skipped)."""
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        skip, self._skip_step = self._skip_step, False
        scaler = "16-mixed" in str(self.trainer.precision)  # the grad scaler handles inf itself
        if not skip and params and self.check_grads and not scaler:
            norms = torch._foreach_norm([p.grad for p in params])
            bad = not bool(torch.isfinite(torch.stack([n.float() for n in norms]).sum()))
            if self._bad(bad):
                skip = True
                if self.nan_policy == "stop":
                    raise NonFiniteLossError(
                        f"non-finite gradients at global step {self.global_step} "
                        "(nan_policy=skip skips such steps)"
                    )
                self._count_skip(f"step {self.global_step} (non-finite gradients)")
        if skip:
            for p in params:
                p.grad = None  # optimizers leave parameters without gradients untouched

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        skipped, self._skipped_now = self._skipped_now, False
        self.log("train/skipped", float(skipped), on_step=True, on_epoch=False, batch_size=1)
        if skipped:
            return
        self._streak = []
        # a sharded strategy may leave this rank an empty shard of a parameter (no max |w|)
        params = [p for p in self.parameters() if p.requires_grad and p.numel()]
        if params:
            peaks = torch._foreach_norm([p.detach() for p in params], float("inf"))  # max |w|
            if self._bad(not bool(torch.isfinite(torch.stack([n.float() for n in peaks])).all())):
                raise NonFiniteLossError(
                    f"non-finite weights after global step {self.global_step} (batch "
                    f"{batch_idx}): the run diverged; lower optim.lr or resume an earlier "
                    "checkpoint"
                )
