"""Throughput of the real training loop: Lightning's Trainer with the configured strategy.

``bench/train.py --trainer`` builds the run as ``train.py`` does (``scalar.train.run.build``:
model, stage module, data module, trainer and its strategy: DDP, FSDP, DeepSpeed) and adds
:class:`Meter`, which counts FLOPs on the first step and times the steps after the warmup.
Figures per rank (FLOPs, memory) and in total (samples, tokens: summed over ranks).
"""

from __future__ import annotations

import resource
import time
from typing import Any

import lightning as L
import torch
from torch.utils.flop_counter import FlopCounterMode


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that also counts the fused CPU attention kernel.

    torch's registry has FLOP formulas for the CUDA flash / memory-efficient / cuDNN
    attention kernels but none for ``_scaled_dot_product_flash_attention_for_cpu``
    (what ``sdpa`` runs on CPU), which would count as 0; it gets the same formulas, so
    a step counts the same on CPU and CUDA (see ``llm_flops`` in ``bench/train.py``).
    """
    import torch.utils.flop_counter as fc

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query, key, value)  # shapes (FlopCounterMode passes them)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)

    aten, mapping = torch.ops.aten, {}
    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", forward),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", backward)):  # fmt: skip
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = formula
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _cuda() -> bool:
    """Whether this process computes on CUDA (the Trainer has put the model there)."""
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _sync() -> None:
    if _cuda():
        torch.cuda.synchronize()


class Meter(L.Callback):
    """Counts the FLOPs of step 1 and times steps ``warmup + 1 .. warmup + steps``.

    FLOPs: :func:`flop_counter` around the whole first optimizer step (forward, backward,
    activation recompute, clipping and update; matmul, conv and attention kernels are what
    it counts). Samples and tokens (LLM inputs: attention mask plus bridge queries) of the
    timed steps are summed over ranks; the run stops after the last timed step.
    """

    def __init__(self, warmup: int, steps: int):
        if warmup < 1 or steps < 1:
            raise ValueError("warmup and steps must be >= 1 (step 1 counts FLOPs)")
        self.warmup, self.steps, self.seen = warmup, steps, 0
        self.samples = self.tokens = 0
        self.flops_per_step = self.seconds = None
        self._counter: FlopCounterMode | None = None
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.seen == 0:
            self._counter = flop_counter()
            self._counter.__enter__()
        elif self.seen == self.warmup:
            _sync()
            if _cuda():
                torch.cuda.reset_peak_memory_stats()
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.seen == 0:
            self._counter.__exit__(None, None, None)
            self.flops_per_step = self._counter.get_total_flops()
        elif self.seen >= self.warmup:
            queries = getattr(getattr(module.model, "bridge", None), "num_queries", 0)
            self.samples += len(batch["samples"])
            self.tokens += int(batch["attention_mask"].sum()) + len(batch["samples"]) * queries
        self.seen += 1
        if self.seen == self.warmup + self.steps:
            _sync()
            self.seconds = time.perf_counter() - self._t0
            local = torch.tensor([self.samples, self.tokens], dtype=torch.float64)
            total = trainer.strategy.reduce(local.to(module.device), reduce_op="sum")
            self.samples, self.tokens = (int(v) for v in total.cpu().tolist())
            trainer.should_stop = True


def bench_trainer(cfg, steps: int, warmup: int, callbacks: list | None = None) -> dict | None:
    """Run ``warmup + steps`` training steps through the Trainer; rank 0 gets the figures."""
    from omegaconf import open_dict

    from scalar.train.run import build

    with open_dict(cfg):
        cfg.trainer.max_steps = warmup + steps
        cfg.trainer.limit_val_batches = 0
        cfg.trainer.num_sanity_val_steps = 0
        cfg.trainer.enable_checkpointing = False
        cfg.trainer.enable_progress_bar = False
        cfg.logger = None
        cfg.callbacks = None
    parts = build(cfg)
    trainer = parts["trainer"]
    meter = Meter(warmup, steps)
    trainer.callbacks.extend([meter, *(callbacks or [])])
    trainer.fit(parts["module"], datamodule=parts["datamodule"])
    if meter.seconds is None:
        raise RuntimeError(f"the run ended after {meter.seen} steps, before {warmup + steps}")
    if not trainer.is_global_zero:
        return None
    res: dict[str, Any] = {
        "mode": "trainer",
        "strategy": type(trainer.strategy).__name__,
        "precision": str(cfg.trainer.precision),
        "world_size": trainer.world_size,
        "steps": steps,
        "batch_size_per_rank": int(cfg.data.loader.batch_size),
        "seconds": meter.seconds,
        "samples": meter.samples,
        "samples_per_s": meter.samples / meter.seconds,
        "tokens_per_s": meter.tokens / meter.seconds,
        "tokens_note": "LLM input tokens: text (attention_mask) + bridge queries, all ranks",
        "flops_per_step_per_rank": meter.flops_per_step,
        "achieved_tflops_per_rank": meter.flops_per_step * steps / meter.seconds / 1e12,
    }
    if _cuda():
        res["device"] = torch.cuda.get_device_name()
        res["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        res["device"] = f"cpu ({torch.get_num_threads()} threads per rank)"
        res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res
