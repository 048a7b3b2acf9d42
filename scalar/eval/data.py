"""Evaluation loaders: every sample exactly once, in order; unreadable images are counted.

Training replaces a sample whose image cannot be decoded by the next loadable one;
evaluation must not (the replacement would be scored twice), so here such a sample is
left out of its batch and listed in ``batch["skipped_samples"]`` as
``(dataset index, task, reason, path)``. ``batch["indices"]`` holds the dataset index of
each row (the key that makes DDP's padded duplicates count once).
"""

from __future__ import annotations

from scalar.data.datamodule import SceneDataModule
from scalar.data.evalset import EvalCollate, EvalDataset, GuardedItems

__all__ = ["EvalCollate", "EvalDataModule", "EvalDataset", "GuardedItems"]


class EvalDataModule(SceneDataModule):
    """``SceneDataModule`` for eval.py; its eval loaders (the parent's) never replace a
    sample (``scalar.data.evalset``): training-time validation scores the same set."""
