"""The typed settings groups of ``SceneDataModule`` (``data.tasks``, ``data.splits``,
``data.encoding``, ``data.loader``): each a nested block of the data config, built here
from its plain dict. A key a group does not have is one clear error naming the group.

CLIP's image statistics (``CLIP_MEAN`` / ``CLIP_STD``) live here, once: the default of
``data.encoding`` and the values the model configs take (``conf/model/vision/clip.yaml``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from scalar.data.sample import PROMPT_KINDS

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # RGB mean of CLIP's preprocessing
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)  # RGB std of CLIP's preprocessing


@dataclass(frozen=True)
class TaskSettings:
    """Which task samples are built, and how (``scalar.data.tasks.TaskBuilder``).

    ``train``: the training mixture (task -> weight, or a list of equally weighted tasks);
    ``val``: tasks built for the evaluation splits (default: ``train``'s);
    ``held_out_categories``: category names (or a manifest file listing them) whose samples
    get ``meta["held_out"]``; ``ref_kinds_file``: refer-toolkit pickle whose per-sentence
    kinds go to sample meta."""

    train: Mapping[str, float] | Sequence[str] = ("rec",)
    val: Mapping[str, float] | Sequence[str] | None = None
    prompt_kinds: Sequence[str] = PROMPT_KINDS
    box_format: str = "continuous"
    val_box_format: str | None = None  # default: continuous when box_format is mixed
    mixed_textual_fraction: float = 0.5
    level_dropout: float = 0.0
    max_spatial_pairs: int = 6
    ground_concepts: bool = False
    held_out_categories: Any = None
    ref_kinds_file: str | None = None

    @property
    def eval_tasks(self) -> Mapping[str, float] | Sequence[str]:
        return self.val if self.val is not None else self.train

    @property
    def eval_box_format(self) -> str:
        if self.val_box_format:
            return self.val_box_format
        return "continuous" if self.box_format == "mixed" else self.box_format


@dataclass(frozen=True)
class SplitSettings:
    """Which splits feed which loaders: one dataloader per split, in this order (a split
    without samples is left out); ``max_samples``: cap per split (absent: all)."""

    val: Sequence[str] = ("val", "heldout")
    test: Sequence[str] = ("test",)
    predict: Sequence[str] | None = None  # default: test's
    max_samples: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodingSettings:
    """How a sample becomes tensors: images squashed to ``image_size`` and normalised with
    the vision tower's ``mean`` / ``std``; ``region_tokens`` soft tokens per visual prompt;
    ``mask_size``-sided region masks; rows of at most ``max_length`` tokens."""

    image_size: int = 64
    mean: Sequence[float] = CLIP_MEAN
    std: Sequence[float] = CLIP_STD
    region_tokens: int = 4
    mask_size: int = 16
    max_length: int = 512


@dataclass(frozen=True)
class LoaderSettings:
    """Batches: ``group_size`` prompts of one image are drawn together (it divides
    ``batch_size``); ``samples_per_epoch`` mixture draws make an epoch (None: the number of
    training samples)."""

    batch_size: int = 16
    val_batch_size: int | None = None  # default: batch_size
    group_size: int = 1
    num_workers: int = 0
    samples_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if int(self.group_size) < 1 or int(self.batch_size) % int(self.group_size):
            raise ValueError(
                f"data.loader.group_size ({self.group_size}) must be >= 1 and divide "
                f"data.loader.batch_size ({self.batch_size}): a batch holds whole groups of "
                "prompts of one image"
            )


S = TypeVar("S")


def settings(cls: type[S], value: S | Mapping[str, Any] | None, key: str) -> S:
    """``value`` (a ``cls``, a plain mapping of its fields, or None for the defaults) as a
    ``cls``; a field the group does not have is one line naming ``data.<key>``."""
    if isinstance(value, cls):
        return value
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise ValueError(f"data.{key} must be a mapping of {cls.__name__} keys, got {value!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueError(f"data.{key}: unknown key(s) {unknown}; valid: {names}")
    return cls(**value)


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "EncodingSettings",
    "LoaderSettings",
    "SplitSettings",
    "TaskSettings",
    "settings",
]
