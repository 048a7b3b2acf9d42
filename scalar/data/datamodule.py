"""The Lightning DataModule: corpora -> task samples -> batches of the batch contract.

``corpora`` maps a split name (train, val, heldout, test, testA, ...) to a reader (a
callable returning a ``Corpus``, e.g. a Hydra ``_partial_: true`` reader config) or a
list of them merged onto the first with ``merge_corpora``. Training batches follow a
task mixture (``MixtureSampler``); its position is saved with the checkpoint
(``state_dict``) so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from scalar.core.config import plain
from scalar.data.collate import Collator, row_lengths
from scalar.data.dataset import MixtureSampler, SampleDataset, image_keys
from scalar.data.evalset import EvalCollate, eval_dataset
from scalar.data.ledger import SkipLedger, batch_split
from scalar.data.merge import clear_cache, read_all
from scalar.data.prepare import (
    attach_sent_kinds,
    cap_samples,
    concept_texts,
    ensure_synthetic,
    ensure_tokenizer,
    held_out_names,
    load_sent_kinds,
)
from scalar.data.readers.common import strict_rows
from scalar.data.resume import ResumableLoader
from scalar.data.sample import Sample
from scalar.data.scene import Corpus, Skips
from scalar.data.settings import (
    EncodingSettings,
    LoaderSettings,
    SplitSettings,
    TaskSettings,
    settings,
)
from scalar.data.tasks import TaskBuilder

log = logging.getLogger(__name__)


class SceneDataModule(L.LightningDataModule):
    """See the module docstring; ``setup`` exposes ``corpora``, ``samples`` and ``skips``.

    ``tasks``, ``splits``, ``encoding`` and ``loader`` are the typed groups of
    :mod:`scalar.data.settings` (or their plain dicts). ``root`` is the corpus folder
    (where ``synthetic`` builds); ``source`` holds the location keys only the reader
    configs read (``${data.source.dataset}``, ...): the module itself takes nothing from it.
    ``tokenizer`` is an already loaded tokenizer (eval.py passes the model's).
    """

    def __init__(
        self,
        corpora: Mapping[str, Any],
        root: str | None = None,
        source: Mapping[str, Any] | None = None,
        synthetic: Mapping[str, Any] | None = None,
        tokenizer_path: str | None = None,
        llm_path: str | None = None,
        tokenizer_vocab_size: int = 1024,
        tokenizer: Any = None,
        tasks: TaskSettings | Mapping[str, Any] | None = None,
        splits: SplitSettings | Mapping[str, Any] | None = None,
        encoding: EncodingSettings | Mapping[str, Any] | None = None,
        loader: LoaderSettings | Mapping[str, Any] | None = None,
        seed: int = 0,
        streaming: str | None = None,
        strict: bool = False,
    ):
        super().__init__()
        if source is not None and not isinstance(plain(source), Mapping):
            raise ValueError(f"data.source must be a mapping of reader settings, got {source!r}")
        self.strict = bool(strict)  # a row that breaks the schema: error (true) or counted skip
        t = settings(TaskSettings, plain(tasks), "tasks")
        sp = settings(SplitSettings, plain(splits), "splits")
        enc = settings(EncodingSettings, plain(encoding), "encoding")
        ld = settings(LoaderSettings, plain(loader), "loader")
        self.settings = {"tasks": t, "splits": sp, "encoding": enc, "loader": ld}
        self.group_size, self.ground_concepts = int(ld.group_size), bool(t.ground_concepts)
        corpora = dict(plain(corpora))  # a split set to null is disabled (as if removed)
        self.corpora_spec = {k: v for k, v in corpora.items() if v is not None}
        self.tasks, self.val_tasks = t.train, t.eval_tasks
        self.tokenizer_path, self.tokenizer = tokenizer_path or llm_path, tokenizer
        self.corpus_tokenizer_path = tokenizer_path  # trained here when missing, never an LLM's
        self.image_size, self.mean, self.std = int(enc.image_size), tuple(enc.mean), tuple(enc.std)
        self.region_tokens, self.mask_size = enc.region_tokens, enc.mask_size
        self.max_length = enc.max_length
        self.box_format, self.val_box_format = t.box_format, t.eval_box_format
        self.mixed_textual_fraction, self.level_dropout = t.mixed_textual_fraction, t.level_dropout
        self.prompt_kinds = tuple(t.prompt_kinds)
        self.batch_size = ld.batch_size
        self.val_batch_size = ld.val_batch_size or ld.batch_size
        self.num_workers, self.seed = ld.num_workers, seed
        self.synthetic = dict(plain(synthetic)) if synthetic else None
        self.max_samples = dict(sp.max_samples or {})
        self.samples_per_epoch = ld.samples_per_epoch
        self.val_splits, self.test_splits = list(sp.val), list(sp.test)
        self.predict_splits = list(sp.predict) if sp.predict else list(sp.test)
        self.max_spatial_pairs = t.max_spatial_pairs
        self.ref_kinds_file, self.held_out_spec = t.ref_kinds_file, t.held_out_categories
        self.vocab_size, self.root = tokenizer_vocab_size, root
        self.streaming = str(streaming) if streaming else None  # shard folder (scalar.data.shards)
        self.corpora: dict[str, Corpus] = {}
        self.samples: dict[str, list[Sample]] = {}
        self.skips = Skips()  # every split's skips together
        self.ledger = SkipLedger()  # the same, split by split (scalar.data.ledger)
        self.collator: Collator | None = None
        self.sampler: MixtureSampler | None = None
        self._pending_state: dict | None = None
        self._seen_bad: set[tuple[str, str]] = set()

    # -- preparation ----------------------------------------------------------------------
    def read_corpora(self) -> dict[str, Corpus]:
        if not self.corpora:
            with strict_rows(self.strict):
                for split, spec in self.corpora_spec.items():
                    self.corpora[split] = read_all(spec)
            clear_cache()
            if self.ref_kinds_file and Path(self.ref_kinds_file).is_file():
                kinds = load_sent_kinds(self.ref_kinds_file)
                for corpus in self.corpora.values():
                    attach_sent_kinds(corpus.scenes, kinds)
        return self.corpora

    def prepare_data(self) -> None:
        """Build the synthetic corpus and its tokenizer when configured and missing."""
        if self.synthetic:
            opts = dict(self.synthetic)
            root = opts.pop("root", None) or self.root
            concepts = opts.pop("concepts", None)  # concept text folder (not a build option)
            if root is None:
                raise ValueError("data.synthetic needs a root (or data.root)")
            ensure_synthetic(root, opts)
            if self.tokenizer is None and self.corpus_tokenizer_path:
                ensure_tokenizer(
                    self.corpus_tokenizer_path,
                    lambda: self.read_corpora().values(),
                    self.vocab_size,
                    extra_texts=concept_texts(concepts) if concepts else (),
                )

    def _builder(self, train: bool, held_out: set[str]) -> TaskBuilder:
        return TaskBuilder(
            self.tasks if train else self.val_tasks,
            box_format=self.box_format if train else self.val_box_format,
            mixed_textual_fraction=self.mixed_textual_fraction,
            level_dropout=self.level_dropout if train else 0.0,
            prompt_kinds=self.prompt_kinds,
            seed=self.seed,
            held_out_categories=held_out,
            max_spatial_pairs=self.max_spatial_pairs,
            ground_concepts=self.ground_concepts,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.collator is not None:
            return
        self.prepare_data()
        if self.tokenizer is None:
            if not self.tokenizer_path:
                raise ValueError("no tokenizer: set data.tokenizer_path (or model.llm.path)")
            from scalar.core.tokenizer import load_tokenizer

            self.tokenizer = load_tokenizer(self.tokenizer_path)
        collator = Collator(self.tokenizer, self.region_tokens, self.mask_size, self.max_length)
        self.collator = collator
        if self.streaming:
            self._stream_samples()
        else:
            self._build_samples()
        if self.samples.get("train"):
            weights = self._weights(self.tasks)
            tasks = getattr(self.samples["train"], "tasks", None)
            tasks = tasks if tasks is not None else [s.task for s in self.samples["train"]]
            world = getattr(self.trainer, "world_size", 1) if self.trainer else 1
            rank = getattr(self.trainer, "global_rank", 0) if self.trainer else 0
            images = None
            if self.group_size > 1:
                images = image_keys(self.samples["train"])
            self.sampler = MixtureSampler(
                tasks, weights, self.samples_per_epoch, self.seed, world, rank,
                group_size=self.group_size, images=images,
            )  # fmt: skip
            if self._pending_state:
                self.sampler.load_state_dict(self._pending_state)
                self._pending_state = None

    def _build_samples(self) -> None:
        """Read the corpora and build every split's task samples in memory."""
        corpora = self.read_corpora()
        held_out = held_out_names(self.held_out_spec, corpora.values())
        train_b, eval_b = self._builder(True, held_out), self._builder(False, held_out)
        lines = []
        for split, corpus in corpora.items():
            samples = (train_b if split == "train" else eval_b).build_all(corpus.scenes)
            samples = cap_samples(samples, self.max_samples.get(split), self.seed)
            self.ledger.split(split).update(corpus.skips)
            self.samples[split] = self._drop_long(samples, split)
            self.skips.update(corpus.skips)
            per_task: dict[str, int] = {}
            for s in self.samples[split]:
                per_task[s.task] = per_task.get(s.task, 0) + 1
            n = len(self.samples[split])
            lines.append(f"  {split}: {len(corpus.scenes)} images, {n} samples {per_task}")
        print("data: " + ", ".join(f"{k}={v.name}" for k, v in corpora.items()))
        print("\n".join(lines))
        print("data: " + self.skips.report())
        print("data: " + self.ledger.report())

    def _stream_samples(self) -> None:
        """Samples prepared by ``python -m scalar.data shard``, read from its shards on access."""
        from scalar.data.shards import ShardSamples, load_index

        index = load_index(self.streaming)
        lines = []
        for split in index["splits"]:
            self.samples[split] = ShardSamples(self.streaming, split, index)
            per_task: dict[str, int] = {}
            for t in self.samples[split].tasks:
                per_task[t] = per_task.get(t, 0) + 1
            lines.append(f"  {split}: {len(self.samples[split])} samples {per_task}")
        print(f"data: streaming from {self.streaming}")
        print("\n".join(lines))

    def _drop_long(self, samples: list[Sample], split: str = "train") -> list[Sample]:
        """Drop (and count as ``sample_too_long``) samples longer than ``max_length`` tokens.

        Only samples whose byte count could reach the limit are tokenised."""
        k = self.region_tokens
        bound = [
            len(s.prompt.encode()) + len(s.target.encode()) + k * len(s.regions) + 3
            for s in samples
        ]
        risky = [i for i, b in enumerate(bound) if b > self.max_length]
        if not risky:
            return samples
        lengths = row_lengths(self.collator, [samples[i] for i in risky])
        bad = {i for i, n in zip(risky, lengths) if n > self.max_length}
        for i in sorted(bad):
            s = samples[i]
            detail = f"{s.task} image {s.image.id} ({s.prompt[:40]!r})"
            self.skips.add("sample_too_long", detail)
            self.ledger.split(split).add("sample_too_long", detail)
        return [s for i, s in enumerate(samples) if i not in bad]

    @staticmethod
    def _weights(tasks) -> dict[str, float]:
        if isinstance(tasks, Mapping):
            return {str(k): float(v) for k, v in tasks.items()}
        return {t: 1.0 for t in tasks}

    # -- loaders --------------------------------------------------------------------------
    def _dataset(self, split: str) -> SampleDataset:
        if self.streaming:
            from scalar.data.shards import ShardDataset

            return ShardDataset(self.samples[split], self.image_size, self.mean, self.std)
        return SampleDataset(self.samples[split], self.image_size, self.mean, self.std)

    def _loader(self, split: str, batch_size: int, sampler=None) -> DataLoader | ResumableLoader:
        """Training replaces an unreadable sample and resumes from the mixture's position
        (the one resumable loader, whose state is the sampler's); evaluation leaves an
        unreadable sample out (as eval.py)."""
        if sampler is not None:
            return ResumableLoader(
                self._dataset(split), batch_size, collate_fn=self.collator, seed=self.seed,
                num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                index_sampler=sampler,
            )  # fmt: skip
        return DataLoader(
            eval_dataset(self._dataset(split)),
            batch_size=batch_size,
            shuffle=False,
            collate_fn=EvalCollate(self.collator),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _require_setup(self) -> None:
        if self.collator is None:
            self.setup()

    def train_dataloader(self) -> ResumableLoader:
        self._require_setup()
        if self.sampler is None:
            raise ValueError(
                f"no training samples: split 'train' of {sorted(self.samples)} is empty or "
                f"missing for tasks {self.tasks}"
            )
        return self._loader("train", self.batch_size, self.sampler)

    def _eval_loaders(self, splits: Sequence[str]):
        self._require_setup()
        names = [s for s in splits if self.samples.get(s)]
        loaders = [self._loader(s, self.val_batch_size) for s in names]
        return loaders[0] if len(loaders) == 1 else loaders

    def eval_split_names(self, stage: str = "val") -> list[str]:
        """Split of each eval dataloader, in dataloader_idx order."""
        splits = {"val": self.val_splits, "test": self.test_splits}.get(stage, self.predict_splits)
        return [s for s in splits if self.samples.get(s)]

    def val_dataloader(self):
        return self._eval_loaders(self.val_splits)

    def test_dataloader(self):
        return self._eval_loaders(self.test_splits)

    def predict_dataloader(self):
        return self._eval_loaders(self.predict_splits)

    # -- hooks and state ------------------------------------------------------------------
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count unreadable images (per split) and advance the sampler on training batches."""
        if isinstance(batch, dict):
            split = batch_split(self, dataloader_idx)
            for reason, path in batch.get("skipped", []):
                self.ledger.split(split).add(reason, path)
                if (reason, path) not in self._seen_bad:
                    self._seen_bad.add((reason, path))
                    self.skips.add(reason, path)
                    log.warning("%s: %s", reason, path)
            training = self.trainer is None or self.trainer.training
            if training and self.sampler is not None and "samples" in batch:
                self.sampler.consume(len(batch["samples"]))
        return batch

    def transfer_batch_to_device(self, batch: Any, device, dataloader_idx: int) -> Any:
        """Move the tensors of a batch dict; samples and other plain data stay as they are."""
        if isinstance(batch, dict):
            return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def state_dict(self) -> dict:
        if self.sampler is not None:
            return {"sampler": self.sampler.state_dict()}
        return {"sampler": self._pending_state} if self._pending_state else {}

    def load_state_dict(self, state_dict: dict) -> None:
        state = state_dict.get("sampler")
        if not state:
            return
        if self.sampler is not None:
            self.sampler.load_state_dict(state)
        else:
            self._pending_state = dict(state)


__all__ = ["SceneDataModule"]
