"""The RL stage's sample table: prompts, completions, rewards and advantages of a step,
appended to ``<dir>/rl_samples.csv`` and sent to W&B as a table.

Columns: ``step, algo, task, prompt, completion, reward, advantage``, then ``thumbnail``
(the row's picture: a PNG under ``<dir>/rl_thumbs/`` in the CSV, a ``wandb.Image`` in
W&B), ``chosen`` / ``rejected`` (the DPO pair of the row's prompt, on its first sample)
and one ``term/<name>`` column per reward term of the registry (empty where the term does
not apply to the row).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS = ["step", "algo", "task", "prompt", "completion", "reward", "advantage", "thumbnail",
           "chosen", "rejected"]  # fmt: skip
THUMB_PX = 96  # long side of a thumbnail


def term_value(gen: Mapping[str, Any], name: str, j: int) -> float | str:
    """Row ``j``'s value of the term ``name`` ("" where it does not apply)."""
    terms, applies = gen.get("terms") or {}, gen.get("applies") or {}
    if name not in terms or j >= len(terms[name]):
        return ""
    if name in applies and not bool(applies[name][j]):
        return ""
    return float(terms[name][j])


def thumbnail(module, sample, j: int, rep: Mapping[str, Any]):
    """A small PIL picture of row ``j`` (``None`` when the batch holds no image)."""
    from scalar.core.batch import row_image
    from scalar.core.pictures import image_for_sample

    if "images" not in rep:
        return None
    mean, std = getattr(module, "image_mean", None), getattr(module, "image_std", None)
    try:
        pic = image_for_sample(sample, row_image(rep, j), mean, std)
    except (FileNotFoundError, IndexError):
        return None
    pic.thumbnail((THUMB_PX, THUMB_PX))
    return pic


class SampleTable:
    """``every``: write a table every N steps (0: never); ``rows``: rows per table;
    ``dir``: folder of the CSV (default: the trainer's root folder); ``terms``: names of
    the reward terms given a column each (the stage sets them from its registry)."""

    def __init__(self, *, every: int = 50, rows: int = 16, dir: str | None = None,  # noqa: A002
                 terms: Sequence[str] = ()):  # fmt: skip
        if int(every) < 0 or int(rows) < 0:
            raise ValueError(f"sample table: every and rows must be >= 0, got {every}, {rows}")
        self.every, self.rows, self.dir = int(every), int(rows), dir
        self.terms = list(terms)
        self.path: Path | None = None

    def columns(self) -> list[str]:
        return COLUMNS + [f"term/{t}" for t in self.terms]

    def write(self, module, algo: str, rep: Mapping[str, Any], gen: Mapping[str, Any], total):
        """Rows of one step of ``module`` (a LightningModule being fitted) on rank 0."""
        step = int(module.global_step)
        if self.every <= 0 or step % self.every or not module.trainer.is_global_zero:
            return
        root = Path(self.dir or module.trainer.default_root_dir)
        (root / "rl_thumbs").mkdir(parents=True, exist_ok=True)
        adv, pairs = gen.get("advantage"), gen.get("pairs") or {}
        data, pics = [], []
        for j, s in enumerate(rep["samples"][: self.rows]):
            role = s.meta.get("role", s.task)
            a = float(adv[j]) if adv is not None and j < len(adv) else float("nan")
            pic = thumbnail(module, s, j, rep)
            name = ""
            if pic is not None:
                name = f"rl_thumbs/{algo}_{step}_{j}_{role}.png"
                pic.save(root / name)
            chosen, rejected = pairs.get(j, ("", ""))
            terms = [term_value(gen, t, j) for t in self.terms]
            data.append([step, algo, role, s.prompt, gen["texts"][j], float(total[j]), a, name,
                         chosen, rejected, *terms])  # fmt: skip
            pics.append(pic)
        self.path = root / "rl_samples.csv"
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(self.columns())
            writer.writerows(data)
        from lightning.pytorch.loggers import WandbLogger

        loggers = [lg for lg in module.loggers if isinstance(lg, WandbLogger)]
        if loggers:
            rows = [r[:7] + [_wandb_image(p)] + r[8:] for r, p in zip(data, pics)]
            for logger in loggers:
                logger.log_table(key="train/samples", columns=self.columns(), data=rows, step=step)


def _wandb_image(pic):
    if pic is None:
        return None
    import wandb

    return wandb.Image(pic)
