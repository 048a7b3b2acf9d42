"""Stage 0, text-only causal-LM pretraining of the LLM on the concept corpus (``stage=lm``).

``LMModule`` is the align stage's module (optimizer groups, schedule, clipping, non-finite
guard, checkpoints) with a text-only step: the batch's sentences go through the LLM alone
(no image, no bridge prefix) and the loss's ``lm`` term is the next-token cross entropy.
Validation and test report the held-out sentences' token-level perplexity
(``val/perplexity`` = exp of the summed next-token NLL over the counted tokens) and ``nll``.
A checkpoint of this stage starts another run's LLM with ``model.llm.init_from=<ckpt>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalar.stages.align import AlignModule

IGNORE = -100


def text_logits(model: nn.Module, batch: Mapping[str, Any]) -> Tensor:
    """Next-token logits ``[B, T, V]`` of the LLM on ``input_ids`` alone (no image)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = model.decode(model.embed_tokens(ids), mask, pos)[0]
    return model.lm_logits(hidden)


def token_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(summed next-token NLL, counted tokens)`` of a batch (labels -100 are ignored)."""
    tgt = labels[:, 1:].reshape(-1)
    pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    nll = F.cross_entropy(pred, tgt, ignore_index=IGNORE, reduction="sum")
    return nll.detach(), (tgt != IGNORE).sum()


class LMModule(AlignModule):
    """Lightning module of the lm stage; arguments as :class:`AlignModule`'s (the
    validation keys of ``stage/validation`` are accepted; nothing is generated or drawn)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **{**kwargs, "generate": False, "pictures": 0})
        self._sums: dict[str, list[Tensor]] = {}

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return {"logits": text_logits(self.model, batch)}

    def training_step(self, batch: Mapping[str, Any], batch_idx: int):
        terms = self.loss(self(batch), {"labels": batch["labels"]})
        loss = terms["loss"]
        self._log_terms("train", terms, len(batch["input_ids"]), on_step=True, on_epoch=False)
        if self._bad(not bool(torch.isfinite(loss.detach()).all())):
            return self._non_finite(batch, batch_idx, loss)
        return loss

    def _eval_step(self, stage: str, batch, batch_idx: int, dataloader_idx: int) -> None:
        nll, n = token_nll(self(batch)["logits"], batch["labels"])
        sums = self._sums.setdefault(self.split_prefix(stage, dataloader_idx), [])
        sums.append(torch.stack([nll.double(), n.double()]))

    def on_validation_epoch_start(self) -> None:
        self._sums = {}

    def on_test_epoch_start(self) -> None:
        self._sums = {}

    def _log_metrics(self, stage: str) -> None:
        for prefix, parts in sorted(self._sums.items()):
            total = self.trainer.strategy.reduce(torch.stack(parts).sum(0), reduce_op="sum")
            nll, n = float(total[0]), float(total[1])
            mean = nll / n if n else math.nan
            self.log(f"{prefix}/nll", mean, prog_bar=False)
            self.log(f"{prefix}/perplexity", math.exp(mean) if n else math.nan, prog_bar=True)
        self._sums = {}
