"""Gradient clipping that works under every strategy, precision and optimizer."""

from __future__ import annotations

from torch import nn


def clip_gradients(module, optimizer, clip_val, algorithm) -> None:
    """``configure_gradient_clipping`` for every strategy, precision and optimizer.

    * FSDP: Lightning's FSDP precision plugin refuses norm clipping; a sharded model
      computes the global norm with ``FullyShardedDataParallel.clip_grad_norm_`` (an
      all-reduce of the shards' squared norms), which this calls.
    * Mixed precision (``bf16-mixed``, ``16-mixed``) with an optimizer that unscales inside
      its step (fused AdamW): Lightning's AMP plugin refuses to clip. Under ``bf16-mixed``
      there is no loss scaling, so the gradients are clipped as they are; under
      ``16-mixed`` the grad scaler unscales them first, after which its ``step`` hands the
      fused kernel no scale (only the inf flag, so a step with inf gradients is still
      skipped and the scale backs off).
    * Elsewhere (fp32, DeepSpeed, which clips inside its engine) Lightning's own clipping.
    """
    if not clip_val:
        return
    from lightning.pytorch.plugins.precision import MixedPrecision
    from torch.distributed.fsdp import FullyShardedDataParallel

    wrapped = module.trainer.model
    if isinstance(wrapped, FullyShardedDataParallel) and algorithm in (None, "norm"):
        wrapped.clip_grad_norm_(clip_val)
        return
    plugin = module.trainer.precision_plugin
    if isinstance(plugin, MixedPrecision) and getattr(optimizer, "_step_supports_amp_scaling", 0):
        if plugin.scaler is not None:
            plugin.scaler.unscale_(optimizer)  # Lightning leaves it to such optimizers' step
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if algorithm == "value":
            nn.utils.clip_grad_value_(params, clip_val)
        else:
            nn.utils.clip_grad_norm_(params, clip_val)
        return
    module.clip_gradients(optimizer, gradient_clip_val=clip_val, gradient_clip_algorithm=algorithm)
