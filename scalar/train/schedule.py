"""Learning-rate schedules built as ``LambdaLR`` from Hydra partials."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine_factor(
    step: int, warmup_steps: int, total_steps: int | float | None, min_lr_ratio: float
) -> float:
    """LR multiplier: linear warm-up from ``1/warmup`` to 1, then cosine to ``min_lr_ratio``.

    With no finite ``total_steps`` (time-limited runs) the rate stays at 1 after warm-up.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps is None or not math.isfinite(total_steps) or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1.0, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _WarmupCosine:
    """Picklable lambda (checkpoints save scheduler state, not the function)."""

    def __init__(self, warmup_steps: int, total_steps: int | float | None, min_lr_ratio: float):
        self.warmup_steps, self.total_steps, self.min_lr_ratio = (
            warmup_steps,
            total_steps,
            min_lr_ratio,
        )

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.warmup_steps, self.total_steps, self.min_lr_ratio)


def warmup_cosine(
    optimizer: Optimizer,
    warmup_steps: int = 100,
    total_steps: int | float | None = None,
    min_lr_ratio: float = 0.1,
) -> LambdaLR:
    """``LambdaLR`` with linear warm-up and cosine decay; steps once per optimizer step.

    ``total_steps`` is filled by the training module from the trainer's estimate when
    left ``None``.
    """
    if warmup_steps < 0 or not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"bad schedule: warmup_steps={warmup_steps}, min_lr_ratio={min_lr_ratio}")
    return LambdaLR(optimizer, _WarmupCosine(int(warmup_steps), total_steps, float(min_lr_ratio)))
