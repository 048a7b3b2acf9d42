"""Lightning's FSDPStrategy on CPU processes (gloo), for tests of the ``fsdp`` preset.

Lightning allows FSDP only with CUDA, and PyTorch's FSDP picks its compute device from
the accelerator unless given one. This subclass changes neither the wrapping, the
activation checkpointing, the mixed precision nor the checkpoint format of the preset:
it wraps the module itself with ``device_id=cpu`` and hands the wrapped module to
Lightning, which then only applies activation checkpointing (it skips wrapping an
already wrapped module). With bf16 mixed precision every unit casts its inputs to bf16:
on a GPU, Lightning's CUDA autocast context does that, and it does not reach CPU ops.
"""

from __future__ import annotations

import dataclasses

import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch.distributed.fsdp import FullyShardedDataParallel


class CPUFSDPStrategy(FSDPStrategy):
    """The FSDP strategy with FSDP's compute device pinned to the CPU."""

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        kwargs = dict(self.kwargs)
        mixed = self.mixed_precision_config
        if mixed is not None:
            mixed = dataclasses.replace(mixed, cast_forward_inputs=True)
        model = FullyShardedDataParallel(
            module=model,
            cpu_offload=self.cpu_offload,
            mixed_precision=mixed,
            sharding_strategy=self.sharding_strategy,
            device_id=torch.device("cpu"),
            **kwargs,
        )
        self.kwargs.pop("auto_wrap_policy", None)  # wrapped: Lightning need not warn of it
        return super()._setup_model(model)
