"""Text-only batches of the concept corpus (``scalar.data.synth.concepts``) for ``stage=lm``.

Each sentence is one row: ``[bos] tokens <eos>`` (bos when the tokenizer has one), padded
per batch; ``labels`` are the ids with padding set to -100, so the causal-LM loss counts
every real next token. The training rows are ``train.txt``, the validation and test rows
the held-out sentences of ``heldout.txt`` (their perplexity is the stage's metric). The
corpus is written into ``root`` when missing (it depends only on ``seed`` and
``heldout_fraction``, never on a build's annotations); the tokenizer is the model's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from scalar.core.errors import UserError
from scalar.data.synth.concepts import read_concepts, write_concepts

IGNORE = -100


class Sentence:
    """One row: its text and ``meta['id']`` (``concepts:<split>/<line>``, for reports).
    A plain class: Lightning's batch transfer passes it through untouched."""

    __slots__ = ("meta", "text")

    def __init__(self, text: str, meta: dict):
        self.text, self.meta = text, meta


def collate_text(rows: list[tuple[Sentence, list[int]]], pad_id: int) -> dict[str, Any]:
    """``input_ids``, ``attention_mask``, ``labels`` ``[B, T]`` and the ``samples``."""
    width = max(len(ids) for _, ids in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (_, row) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    labels = ids.masked_fill(mask == 0, IGNORE)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "samples": [s for s, _ in rows]}  # fmt: skip


class _Collate:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows):
        return collate_text(rows, self.pad_id)


class ConceptTextDataModule(L.LightningDataModule):
    """Batches of concept sentences; ``tokenizer`` is set by the run (the model's)."""

    def __init__(
        self,
        root: str,
        tokenizer_path: str | None = None,
        tokenizer: Any = None,
        seed: int = 0,
        heldout_fraction: float = 0.1,
        batch_size: int = 32,
        val_batch_size: int = 64,
        max_length: int = 128,
        num_workers: int = 0,
    ):
        super().__init__()
        self.root, self.tokenizer_path, self.tokenizer = Path(root), tokenizer_path, tokenizer
        self.seed, self.heldout_fraction = int(seed), float(heldout_fraction)
        self.batch_size, self.val_batch_size = int(batch_size), int(val_batch_size)
        self.max_length, self.num_workers = int(max_length), int(num_workers)
        self.rows: dict[str, list[tuple[Sentence, list[int]]]] = {}

    def prepare_data(self) -> None:
        """Write the concept corpus into ``root`` unless it is there (with these options)."""
        record = self.root / "concepts.json"
        if not record.is_file():
            print(f"data: writing the concept corpus into {self.root}")
            write_concepts(self.root, self.seed, self.heldout_fraction)
            return
        have = json.loads(record.read_text())
        want = {"seed": self.seed, "heldout_fraction": self.heldout_fraction}
        if {k: have.get(k) for k in want} != want:
            raise UserError(
                f"{self.root} holds a concept corpus written with "
                f"{ {k: have.get(k) for k in want} } but {want} was asked: set data.root to "
                "another folder (or delete this one)"
            )

    def _encode(self, split: str) -> list[tuple[Sentence, list[int]]]:
        tok = self.tokenizer
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        rows = []
        for i, text in enumerate(read_concepts(self.root, split)):
            ids = bos + tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            if len(ids) > self.max_length:
                raise UserError(
                    f"concept sentence {split}/{i} has {len(ids)} tokens > data.max_length="
                    f"{self.max_length}: {text!r}"
                )
            rows.append((Sentence(text, {"id": f"concepts:{split}/{i}"}), ids))
        return rows

    def setup(self, stage: str | None = None) -> None:
        if self.rows:
            return
        self.prepare_data()
        if self.tokenizer is None:
            if not self.tokenizer_path:
                raise UserError("no tokenizer: set model.tokenizer_path (the model's tokenizer)")
            from scalar.core.tokenizer import load_tokenizer

            self.tokenizer = load_tokenizer(self.tokenizer_path)
        self.rows = {split: self._encode(split) for split in ("train", "heldout")}

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if not self.rows:
            raise RuntimeError("call setup() first")
        pad = self.tokenizer.pad_token_id
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.rows[split], batch_size=batch_size, shuffle=shuffle,
                          collate_fn=_Collate(pad), num_workers=self.num_workers,
                          generator=g if shuffle else None)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("heldout", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
