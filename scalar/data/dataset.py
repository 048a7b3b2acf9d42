"""Datasets over task samples: image decoding, and the task-mixture sampler.

``SampleDataset`` decodes an image with PIL only when an item is asked for. A missing or
unreadable image never stops training: the item is replaced by the next sample whose
image loads, and the replacement is counted (``missing_image`` / ``corrupt_image`` /
``empty_image`` with
the path) in ``dataset.skips`` and listed in the item's ``skipped`` (so that counts made
in worker processes reach the main process through the batch).
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler

from scalar.data.imagecheck import DECODE_ERRORS, failure_reason
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
        self._recent: OrderedDict[str, torch.Tensor] = OrderedDict()  # last decoded images

    CACHE = 64  # decoded images kept: prompts of one image (a sampler group) decode it once

    def __len__(self) -> int:
        return len(self.samples)

    def _try(self, path: str) -> tuple[torch.Tensor | None, str | None]:
        if path in self._bad:
            return None, self._bad[path]
        if path in self._recent:
            self._recent.move_to_end(path)
            return self._recent[path], None
        try:
            image = load_image(path, self.image_size, self.mean, self.std)
            self._recent[path] = image
            if len(self._recent) > self.CACHE:
                self._recent.popitem(last=False)
            return image, None
        except DECODE_ERRORS as err:
            reason = failure_reason(path, err)
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


def image_keys(samples) -> list:
    """The image key of every sample (``image_ids`` of streamed shards, else image ids)."""
    keys = getattr(samples, "image_ids", None)
    if keys is None and hasattr(samples, "tasks"):
        raise ValueError(
            "these shards predate image ids: rewrite them with `python -m scalar.data shard` "
            "or set data.loader.group_size=1"
        )
    return list(keys) if keys is not None else [s.image.id for s in samples]


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

    ``group_size`` k > 1 (needs ``images``, the image key of each sample): every draw
    is followed by k - 1 other samples of the same image (tasks again drawn by weight
    among those the image has; an image with fewer samples repeats them), so that a
    batch of a multiple of k rows holds whole groups and the vision tower encodes each
    image once for k prompts (the collate deduplicates images). Ranks then take every
    ``num_replicas``-th group.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        weights: Mapping[str, float],
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        group_size: int = 1,
        images: Sequence | None = None,
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
        self.group_size = int(group_size)
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        self.image_of: list | None = None
        self.by_image: dict = {}
        if self.group_size > 1:
            if images is None or len(images) != len(tasks):
                raise ValueError("group_size > 1 needs the image key of every sample (images=)")
            self.image_of = list(images)
            for t in self.names:
                for i in self.by_task[t]:
                    self.by_image.setdefault(self.image_of[i], {}).setdefault(t, []).append(i)
            self.total = -(-self.total // self.group_size) * self.group_size
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
        if self.group_size == 1:
            for d in draws:
                t = self.names[d]
                perm = perms[t]
                out.append(int(perm[taken[t] % len(perm)]))
                taken[t] += 1
            return out
        pick = random.Random(f"{self.seed}/{epoch}/groups")
        weight = dict(zip(self.names, self.p.tolist()))
        for d in draws[: self.total // self.group_size]:
            t = self.names[d]
            lead = int(perms[t][taken[t] % len(perms[t])])
            taken[t] += 1
            out.append(lead)
            out.extend(self._companions(lead, pick, weight))
        return out

    def _companions(self, lead: int, pick: random.Random, weight: dict) -> list[int]:
        """``group_size - 1`` other samples of ``lead``'s image (repeats when it has fewer)."""
        pools = self.by_image[self.image_of[lead]]
        used, taken = {lead}, dict.fromkeys(pools, 0)  # taken: samples of a task in the group
        for t, idx in pools.items():
            taken[t] += lead in idx
        out: list[int] = []
        for _ in range(self.group_size - 1):
            live = [t for t in pools if taken[t] < len(pools[t])]
            if not live:  # every sample of the image is in the group: start repeating
                used, taken, live = set(), dict.fromkeys(pools, 0), list(pools)
            t = live[0] if len(live) == 1 else pick.choices(live, [weight[t] for t in live])[0]
            pool = pools[t]
            choice = pool[pick.randrange(len(pool))]
            while choice in used:  # at least one sample of the task is still free
                choice = pool[pick.randrange(len(pool))]
            used.add(choice)
            taken[t] += 1
            out.append(choice)
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
        k, r = self.group_size, self.num_replicas
        groups = [rest[j : j + k] for j in range(0, len(rest), k)]
        if r > 1 and len(groups) % r:
            groups += groups[: r - len(groups) % r]
        return [i for g in groups[self.rank :: r] for i in g]

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
