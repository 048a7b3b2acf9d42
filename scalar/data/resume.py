"""The resumable training loader of every stage: the batch order is a function of
(seed, epoch) only.

Two sources of order share it: its own per-epoch permutation of a map-style dataset (RL
prompt images, third-party datamodules through :func:`make_resumable`), or a stateful
index sampler such as the task mixture's ``MixtureSampler`` (``index_sampler=``), which
keeps its position itself. Lightning saves the state of a train loader that has ``state_dict``/``load_state_dict``
in its checkpoints and restores it before iterating again. Together with the RNG state
kept by :class:`scalar.train.callbacks.RngState`, a run resumed mid-epoch sees the very
batches an uninterrupted run would have seen next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from scalar.core.dist import rank_world


class _EpochSetter:
    """Exposed as ``.sampler`` so Lightning's per-epoch ``set_epoch`` call reaches the loader."""

    def __init__(self, loader: ResumableLoader):
        self._loader = loader

    def set_epoch(self, epoch: int) -> None:
        self._loader.set_epoch(epoch)


def dataloader_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order ``DataLoader(shuffle=True, generator=Generator().manual_seed(seed))`` gives
    in its ``epoch``-th full pass (per pass its generator draws one worker base seed and
    two permutations: the sampler's and an unused one)."""
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(int(epoch)):
        torch.empty((), dtype=torch.int64).random_(generator=g)
        torch.randperm(n, generator=g)
        torch.randperm(n, generator=g)
    torch.empty((), dtype=torch.int64).random_(generator=g)
    return torch.randperm(n, generator=g).tolist()


ORDERS = ("seeded", "dataloader")


class ResumableLoader:
    """Iterates ``dataset`` in batches; shuffled per epoch, sharded over DDP ranks.

    ``state_dict()`` records the epoch and how many batches this epoch has yielded;
    after ``load_state_dict`` the next iteration of the same epoch skips those batches
    (by index, without loading them). Worker processes, pinning and ``collate_fn``
    behave as in a ``DataLoader``, which is rebuilt for every epoch with a generator
    seeded from (seed, epoch) so that the global RNG is never consumed by data loading.

    ``order``: ``seeded`` (a permutation seeded by (seed, epoch)) or ``dataloader`` (on one
    rank, the order of a shuffled ``DataLoader`` seeded with ``seed``: the RL prompt
    images keep the order of the runs made before they were resumable; several ranks
    shard the seeded order).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        worker_init_fn: Callable[[int], None] | None = None,
        persistent_workers: bool = False,  # with index_sampler only (else rebuilt each epoch)
        order: str = "seeded",
        index_sampler: Any | None = None,
        **loader_kwargs: Any,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.order = order
        self.dataset, self.batch_size, self.collate_fn = dataset, int(batch_size), collate_fn
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.num_workers, self.pin_memory = int(num_workers), pin_memory
        self.worker_init_fn = worker_init_fn
        self.loader_kwargs = {k: v for k, v in loader_kwargs.items() if v is not None}
        self.epoch, self._skip, self._yielded = 0, 0, 0
        self.sampler = _EpochSetter(self)
        self.index_sampler = index_sampler
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self._loader: DataLoader | None = None

    def set_epoch(self, epoch: int) -> None:
        if self.index_sampler is not None:
            self.index_sampler.set_epoch(epoch)
            return
        if int(epoch) != self.epoch:
            self._skip, self._yielded = 0, 0
        self.epoch = int(epoch)

    def _order(self) -> list[int]:
        n = len(self.dataset)
        rank, world = rank_world()
        if self.shuffle and self.order == "dataloader" and world == 1:
            return dataloader_order(n, self.seed, self.epoch)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        if world > 1:  # pad (like DistributedSampler) so every rank gets as many samples
            per_rank = -(-n // world)
            order = (order * (1 + (per_rank * world) // max(1, n)))[: per_rank * world]
            order = order[rank::world]
        return order

    def _batches(self) -> list[list[int]]:
        order = self._order()
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __len__(self) -> int:
        if self.index_sampler is not None:
            n = len(self.index_sampler)
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        _, world = rank_world()
        n = -(-len(self.dataset) // world)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _sampled(self) -> Iterator[Any]:
        if self._loader is None:
            self._loader = DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=self.index_sampler,
                collate_fn=self.collate_fn,
                drop_last=self.drop_last,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                worker_init_fn=self.worker_init_fn,
                persistent_workers=self.persistent_workers,
                generator=torch.Generator().manual_seed(self.seed * 7_919),  # not the global RNG
                **self.loader_kwargs,
            )
        yield from self._loader

    def __iter__(self) -> Iterator[Any]:
        if self.index_sampler is not None:
            yield from self._sampled()
            return
        start, self._skip = self._skip, 0
        batches = self._batches()[start:]
        self._yielded = start
        if not batches:
            return
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            worker_init_fn=self.worker_init_fn,
            generator=torch.Generator().manual_seed(self.seed * 7_919 + self.epoch),
            **self.loader_kwargs,
        )
        for batch in loader:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        if self.index_sampler is not None:
            return self.index_sampler.state_dict()
        return {"epoch": self.epoch, "batches": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if self.index_sampler is not None:
            self.index_sampler.load_state_dict(state)
            return
        self.epoch, self._skip, self._yielded = int(state["epoch"]), int(state["batches"]), 0
        self.seed = int(state.get("seed", self.seed))


def make_resumable(loader: Any, seed: int) -> Any:
    """Rebuild a shuffled ``DataLoader`` as a :class:`ResumableLoader`; others pass through.

    Loaders that already keep state (``state_dict`` and ``load_state_dict``), iterable
    datasets and custom batch samplers are returned unchanged.
    """
    if not isinstance(loader, DataLoader) or hasattr(loader, "state_dict"):
        return loader
    from torch.utils.data import BatchSampler, IterableDataset, RandomSampler, SequentialSampler

    if isinstance(loader.dataset, IterableDataset) or loader.batch_size is None:
        return loader
    if type(loader.batch_sampler) is not BatchSampler:
        return loader
    sampler = loader.sampler
    if not isinstance(sampler, RandomSampler | SequentialSampler):
        return loader
    extra = {}
    if loader.num_workers > 0:
        extra = {"prefetch_factor": loader.prefetch_factor, "timeout": loader.timeout}
        extra["multiprocessing_context"] = loader.multiprocessing_context
    return ResumableLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        collate_fn=loader.collate_fn,
        shuffle=isinstance(sampler, RandomSampler),
        drop_last=loader.drop_last,
        seed=seed,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        worker_init_fn=loader.worker_init_fn,
        **extra,
    )
