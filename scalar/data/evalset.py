"""Evaluation datasets: every sample exactly once, in order; unreadable images are counted.

Training replaces a sample whose image cannot be decoded by the next loadable one;
evaluation must not (the replacement would be scored twice), so here such a sample is
left out of its batch and listed in ``batch["skipped_samples"]`` as
``(dataset index, task, reason, path)``. ``batch["indices"]`` holds the dataset index of
each row (the key that makes DDP's padded duplicates count once).
"""

from __future__ import annotations

from torch.utils.data import Dataset

from scalar.data.dataset import SampleDataset


class EvalDataset(SampleDataset):
    """Items ``{"sample", "image" (None when unreadable), "index", "skipped"}``."""

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, reason = self._try(sample.image.path)
        skipped = [] if image is not None else [(reason, sample.image.path)]
        return {"sample": sample, "image": image, "index": index, "skipped": skipped}


class GuardedItems(Dataset):
    """Any dataset of such items (e.g. streamed shards): a decoding error skips the item."""

    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        try:
            return self.base[index]
        except (OSError, ValueError, SyntaxError) as err:
            sample = self.base.samples[index]
            where = f"{getattr(sample.image, 'path', '?')} ({type(err).__name__})"
            return {"sample": sample, "image": None, "index": index,
                    "skipped": [("corrupt_image", where)]}  # fmt: skip


class EvalCollate:
    """Wraps the datamodule's ``Collator``: drops items without an image (listed instead)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, items: list[dict]) -> dict:
        good = [it for it in items if it["image"] is not None]
        bad = [it for it in items if it["image"] is None]
        skipped = [(it["index"], it["sample"].task, *it["skipped"][0]) for it in bad]
        batch = self.collator(good) if good else {"samples": [], "skipped": []}
        batch["skipped"] = list(batch.get("skipped", [])) + [x for it in bad for x in it["skipped"]]
        batch["skipped_samples"] = skipped
        batch["indices"] = [it["index"] for it in good]
        return batch


def eval_dataset(base: Dataset) -> Dataset:
    """``base`` as an evaluation dataset: unreadable samples left out, never replaced."""
    if type(base) is SampleDataset:
        return EvalDataset(base.samples, base.image_size, base.mean, base.std)
    return GuardedItems(base)  # e.g. samples streamed from shards
