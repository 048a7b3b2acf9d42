"""Prepared samples in WebDataset tar shards, for corpora larger than memory.

``write_shards`` stores every split's prepared ``Sample`` records (pickled) with the
encoded bytes of their image as ``<out>/<split>-NNNNNN.tar`` (WebDataset layout: members
``<key>.sample.pyd`` and ``<key>.<ext>``, so ``webdataset.WebDataset`` pipelines can stream
them too) and an ``index.json`` holding, per split, each sample's task and the byte
offsets of its two members. ``ShardSamples`` / ``ShardDataset`` read a sample by index
with one seek: only the index is in memory, so the task-mixture sampler (and its exact
resume) works unchanged on shards.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scalar.data.dataset import load_image
from scalar.data.sample import Sample

INDEX = "index.json"


def write_shards(
    samples: Mapping[str, Sequence[Sample]], out: str | Path, shard_size: int = 1000
) -> dict[str, Any]:
    """Write ``{split: samples}`` into tar shards of ``shard_size`` samples; returns the index."""
    import webdataset as wds

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"version": 1, "splits": {}}
    for split, items in samples.items():
        for old in out.glob(f"{split}-*.tar"):
            old.unlink()
        pattern = str(out / f"{split}-%06d.tar")
        with wds.ShardWriter(pattern, maxcount=shard_size, verbose=0) as sink:
            for i, s in enumerate(items):
                ext = Path(s.image.path).suffix.lstrip(".").lower() or "img"
                with open(s.image.path, "rb") as f:  # FileNotFoundError names the path
                    image = f.read()
                sink.write({"__key__": f"{i:09d}", "sample.pyd": pickle.dumps(s), ext: image})
        entries = []
        for shard in sorted(out.glob(f"{split}-*.tar")):
            entries += _members(shard)
        if len(entries) != len(items):
            raise RuntimeError(f"{split}: wrote {len(items)} samples, indexed {len(entries)}")
        index["splits"][split] = {
            "tasks": [s.task for s in items],
            "image_ids": [s.image.id for s in items],  # groups prompts of one image
            "entries": entries,
        }
    (out / INDEX).write_text(json.dumps(index))
    return index


def _members(shard: Path) -> list[list]:
    """``[shard, sample_offset, sample_size, image_offset, image_size]`` per key, in order."""
    rows: dict[str, list] = {}
    with tarfile.open(shard) as tar:
        for m in tar:
            key, _, kind = m.name.partition(".")
            row = rows.setdefault(key, [shard.name, 0, 0, 0, 0])
            at = 1 if kind == "sample.pyd" else 3
            row[at], row[at + 1] = m.offset_data, m.size
    return [rows[k] for k in sorted(rows)]


def load_index(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / INDEX
    if not path.is_file():
        raise FileNotFoundError(
            f"no shard index: {path} (write shards with `python -m scalar.data shard`)"
        )
    return json.loads(path.read_text())


class _Reader:
    """Reads byte ranges of the shards; file handles are opened per process, lazily."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._files: dict[str, Any] = {}

    def read(self, shard: str, offset: int, size: int) -> bytes:
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = open(self.folder / shard, "rb")  # noqa: SIM115
        f.seek(offset)
        return f.read(size)

    def __getstate__(self):  # worker processes open their own handles
        return {"folder": self.folder, "_files": {}}


class ShardSamples(Sequence):
    """The samples of one split, read from the shards on access (``tasks`` is in memory)."""

    def __init__(self, folder: str | Path, split: str, index: Mapping | None = None):
        index = index or load_index(folder)
        if split not in index["splits"]:
            raise KeyError(f"split {split!r} not in the shards of {folder}")
        part = index["splits"][split]
        self.tasks: list[str] = list(part["tasks"])
        self.image_ids: list | None = part.get("image_ids")  # None: shards of an older version
        self.entries: list[list] = part["entries"]
        self.reader = _Reader(Path(folder))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        shard, off, size = self.entries[i][:3]
        return pickle.loads(self.reader.read(shard, off, size))

    def image_bytes(self, i: int) -> bytes:
        shard, _, _, off, size = self.entries[i]
        return self.reader.read(shard, off, size)


class ShardDataset:
    """``SampleDataset``'s items (``sample``, ``image``, ``index``, ``skipped``) from shards."""

    def __init__(self, samples: ShardSamples, image_size: int, mean, std):
        self.samples, self.image_size = samples, int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        raw = io.BytesIO(self.samples.image_bytes(index))
        image = load_image(raw, self.image_size, self.mean, self.std)
        return {"sample": sample, "image": image, "index": index, "skipped": []}
