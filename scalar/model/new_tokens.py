"""Trainable embedding rows of the tokens we add, for an LLM that is frozen or under LoRA.

A frozen LLM's embedding rows of ``<region>``, ``<box>``, ``<point>``, ``<sep>`` (new,
random) and of its eos (which must now follow our answers) would never learn. This
module holds trainable fp32 copies of those rows only (a few kB, not the whole
vocabulary's optimizer state; weight decay never touches the frozen rows): the input
embedding of those ids is replaced by its rows, and their output logits are computed from
its output rows (the input rows again when the LLM ties the two). Its weights live in the
model's state dict, so checkpoints save and load them with everything else.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scalar.core import tokens as T


def new_token_ids(tokenizer) -> list[int]:
    """Ids of the rows this module trains: our added tokens and the eos."""
    ids = {tokenizer.convert_tokens_to_ids(t) for t in T.SCALAR_TOKENS}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(i for i in ids if i is not None)


class NewTokenRows(nn.Module):
    """Input (and, when untied, output) embedding rows of ``ids``, trainable on their own."""

    def __init__(self, ids: list[int], input_embeddings: nn.Module, output_embeddings=None):
        super().__init__()
        weight = input_embeddings.weight
        if max(ids) >= weight.shape[0]:
            raise ValueError(f"token id {max(ids)} is beyond the {weight.shape[0]} embedding rows")
        self.token_ids = tuple(int(i) for i in ids)  # not a buffer: meta-device builds keep it
        index = self.index(weight.device)
        self.input_rows = nn.Parameter(weight.detach()[index].float().clone())
        self.scale = float(getattr(input_embeddings, "embed_scale", 1.0) or 1.0)  # Gemma-style
        out_w = None if output_embeddings is None else output_embeddings.weight
        real = weight.device.type != "meta"  # meta tensors share data_ptr 0: compare objects
        self.tied = (
            out_w is None or out_w is weight or (real and out_w.data_ptr() == weight.data_ptr())
        )
        self.output_rows = (
            None if self.tied else nn.Parameter(out_w.detach()[index].float().clone())
        )
        bias = None if output_embeddings is None else getattr(output_embeddings, "bias", None)
        self.has_bias = bias is not None

    def index(self, device) -> Tensor:
        return torch.tensor(self.token_ids, dtype=torch.long, device=device)

    def forward(self, ids: Tensor, embeds: Tensor, hidden=None, head=None) -> Tensor:
        """``embeds`` (input embeddings of ``ids``) with our rows; with ``hidden``, ``embeds``
        are the logits and ours are recomputed. A forward call, not a parameter read, so
        FSDP and DeepSpeed ZeRO-3 gather the rows first."""
        if hidden is None:
            return self.embed(ids, embeds)
        return self.logits(hidden, embeds, head)

    def embed(self, ids: Tensor, embeds: Tensor) -> Tensor:
        """``embeds`` of ``ids`` with the rows of our ids replaced by the trainable ones."""
        match = ids[..., None] == self.index(ids.device)  # [..., n]
        hit = match.any(-1, keepdim=True)
        rows = self.input_rows[match.long().argmax(-1)] * self.scale
        return torch.where(hit, rows.to(embeds.dtype), embeds)

    def logits(self, hidden: Tensor, logits: Tensor, output_embeddings: nn.Module) -> Tensor:
        """``logits`` with the columns of our ids recomputed from the trainable rows."""
        rows = self.input_rows if self.tied else self.output_rows
        new = hidden.to(rows.dtype) @ rows.t()
        if self.has_bias:
            new = new + output_embeddings.bias[self.index(new.device)].to(new.dtype)
        return logits.index_copy(-1, self.index(logits.device), new.to(logits.dtype))
