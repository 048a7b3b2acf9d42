"""``model.llm.init_from``: start the LLM from the LLM weights of a training checkpoint.

A checkpoint of any stage (``stage=lm`` text pretraining, typically) holds the module's
``state_dict`` with the LLM under ``model.llm.``; those weights replace the freshly built
LLM's, strictly: every key and shape must match (same architecture and tokenizer). A file
that is missing, unreadable or has no matching weights is one :class:`UserError` line.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from scalar.core.errors import UserError

PREFIX = "model.llm."


def llm_state(path: str | Path, prefix: str = PREFIX) -> dict[str, torch.Tensor]:
    """The ``prefix``-ed tensors of the checkpoint file ``path``, prefix removed."""
    path = Path(path)
    where = f"model.llm.init_from={path}"
    if not path.is_file():
        raise UserError(f"{where}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise UserError(f"{where}: cannot read the checkpoint ({first})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{where}: not a training checkpoint (no state_dict)")
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise UserError(f"{where}: no '{prefix}*' weights in the checkpoint")
    return weights


def init_llm_from(llm: nn.Module, path: str | Path) -> int:
    """Copy the LLM weights of checkpoint ``path`` into ``llm`` (strict); returns a count."""
    where = f"model.llm.init_from={path}"
    weights = llm_state(path)
    own = llm.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    shapes = [k for k in own if k in weights and own[k].shape != weights[k].shape]
    if missing or extra or shapes:
        raise UserError(
            f"{where}: LLM weights do not match the model ({len(missing)} missing e.g. "
            f"{missing[:2]}, {len(extra)} unexpected e.g. {extra[:2]}, {len(shapes)} of another "
            f"shape e.g. {shapes[:2]}); the checkpoint needs the same model.llm config and tokenizer"
        )
    llm.load_state_dict(weights, strict=True)
    return len(weights)
