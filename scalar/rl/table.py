"""The RL stage's sample table: prompts, completions, rewards and advantages of a step,
appended to ``<dir>/rl_samples.csv`` and sent to W&B as a table."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

COLUMNS = ["step", "algo", "task", "prompt", "completion", "reward", "advantage"]


class SampleTable:
    """``every``: write a table every N steps (0: never); ``rows``: rows per table;
    ``dir``: folder of the CSV (default: the trainer's root folder)."""

    def __init__(self, *, every: int = 50, rows: int = 16, dir: str | None = None):  # noqa: A002
        if int(every) < 0 or int(rows) < 0:
            raise ValueError(f"sample table: every and rows must be >= 0, got {every}, {rows}")
        self.every, self.rows, self.dir = int(every), int(rows), dir
        self.path: Path | None = None

    def write(self, module, algo: str, rep: Mapping[str, Any], gen: Mapping[str, Any], total):
        """Rows of one step of ``module`` (a LightningModule being fitted) on rank 0."""
        step = int(module.global_step)
        if self.every <= 0 or step % self.every or not module.trainer.is_global_zero:
            return
        adv = gen.get("advantage")
        data = []
        for j, s in enumerate(rep["samples"][: self.rows]):
            role = s.meta.get("role", s.task)
            a = float(adv[j]) if adv is not None and j < len(adv) else float("nan")
            data.append([step, algo, role, s.prompt, gen["texts"][j], float(total[j]), a])
        root = Path(self.dir or module.trainer.default_root_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "rl_samples.csv"
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(COLUMNS)
            writer.writerows(data)
        from lightning.pytorch.loggers import WandbLogger

        for logger in module.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(key="train/samples", columns=COLUMNS, data=data, step=step)
