"""Datasets over task samples: image decoding, and the task-mixture sampler.

``SampleDataset`` decodes an image with PIL only when an item is asked for. A missing or
unreadable image never stops training: the item is replaced by the next sample whose
image loads, and the replacement is counted (``missing_image`` / ``corrupt_image`` with
the path) in ``dataset.skips`` and listed in the item's ``skipped`` (so that counts made
in worker processes reach the main process through the batch).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

from scalar.data.sample import Sample
from scalar.data.scene import Skips

log = logging.getLogger(__name__)


def load_image(path: str, image_size: int, mean: Sequence[float], std: Sequence[float]):
    """Decode, convert to RGB, squash-resize to ``image_size`` and normalise -> ``[3, S, S]``."""
    with Image.open(path) as im:
        im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class SampleDataset(Dataset):
    """Samples with their decoded images: items are ``{"sample", "image", "index", "skipped"}``."""

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        skips: Skips | None = None,
    ):
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {list(mean)} / {list(std)}")
        self.samples = list(samples)
        self.image_size, self.mean, self.std = int(image_size), tuple(mean), tuple(std)
        self.skips = skips if skips is not None else Skips()
        self._bad: dict[str, str] = {}  # path -> reason, per process

    def __len__(self) -> int:
        return len(self.samples)

    def _try(self, path: str) -> tuple[torch.Tensor | None, str | None]:
        if path in self._bad:
            return None, self._bad[path]
        try:
            return load_image(path, self.image_size, self.mean, self.std), None
        except FileNotFoundError:
            reason = "missing_image"
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            reason = "corrupt_image"
        self._bad[path] = reason
        self.skips.add(reason, path)
        log.warning("%s: %s (sample replaced by the next loadable one)", reason, path)
        return None, reason

    def __getitem__(self, index: int) -> dict:
        n = len(self.samples)
        skipped: list[tuple[str, str]] = []
        for k in range(n):
            j = (index + k) % n
            sample = self.samples[j]
            image, reason = self._try(sample.image.path)
            if image is not None:
                return {"sample": sample, "image": image, "index": j, "skipped": skipped}
            skipped.append((reason, sample.image.path))
        raise RuntimeError(
            f"no sample of this dataset ({n}) has a loadable image; e.g. {skipped[:3]}"
        )


class MixtureSampler(DistributedSampler):
    """Draws tasks by weight, then samples of the task without replacement (cycling).

    The order of an epoch depends only on ``seed`` and the epoch, so a run is
    reproducible and a resumed run continues exactly: ``state_dict`` holds the epoch and
    ``position`` (samples of the epoch already consumed by all ranks together, advanced
    with ``consume``), and iteration starts at ``position``. ``set_epoch`` to a new epoch
    resets the position; iterating after a fully consumed epoch moves on to the next.

    With ``num_replicas`` > 1 each rank takes every ``num_replicas``-th index of the
    remaining order (padded by wrapping so that ranks get equally many). It subclasses
    ``DistributedSampler`` only so that Lightning does not wrap it again.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float],
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):  # DistributedSampler.__init__ is not called: it needs a process group
        self.by_task: dict[str, list[int]] = {}
        for i, t in enumerate(tasks):
            if float(weights.get(t, 0.0)) > 0:
                self.by_task.setdefault(t, []).append(i)
        if not self.by_task:
            raise ValueError(
                f"no samples of the weighted tasks {dict(weights)} (present: {sorted(set(tasks))})"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.names = sorted(self.by_task)
        p = np.array([float(weights[t]) for t in self.names])
        self.p = p / p.sum()
        self.total = int(num_samples) if num_samples else sum(map(len, self.by_task.values()))
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.seed, self.epoch, self.position = int(seed), 0, 0
        self.shuffle, self.drop_last = True, False

    def order(self, epoch: int) -> list[int]:
        """The global order of an epoch (all ranks)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        draws = rng.choice(len(self.names), size=self.total, p=self.p)
        perms = {t: rng.permutation(self.by_task[t]) for t in self.names}
        taken = dict.fromkeys(self.names, 0)
        out = []
        for d in draws:
            t = self.names[d]
            perm = perms[t]
            out.append(int(perm[taken[t] % len(perm)]))
            taken[t] += 1
        return out

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.epoch, self.position = int(epoch), 0

    def consume(self, n: int) -> None:
        """Mark ``n`` more samples of this rank (``n * num_replicas`` in all) as trained on."""
        self.position = min(self.total, self.position + int(n) * self.num_replicas)

    def _remaining(self) -> list[int]:
        if self.position >= self.total:
            self.epoch, self.position = self.epoch + 1, 0
        rest = self.order(self.epoch)[self.position :]
        if self.num_replicas > 1 and len(rest) % self.num_replicas:
            rest += rest[: self.num_replicas - len(rest) % self.num_replicas]
        return rest[self.rank :: self.num_replicas]

    def __iter__(self):
        return iter(self._remaining())

    def __len__(self) -> int:
        # The whole epoch's length for this rank, also when resumed mid-epoch: Lightning
        # counts the restored batches on top of what the iterator still yields.
        return -(-self.total // self.num_replicas)

    @property
    def num_samples(self) -> int:  # DistributedSampler's name for this rank's length
        return len(self)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: Mapping) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            log.warning("sampler state was saved with seed %s, now %s", state["seed"], self.seed)
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
