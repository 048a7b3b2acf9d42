"""The one weight loader: a checkpoint's model weights into a model, strictly.

eval.py, single-image prediction, ``init_from=`` and the benchmarks load through it. Only
weights move; optimizer, schedule and data position do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from scalar.train.checkpoint import UserError, load_checkpoint_file
from scalar.train.tokenizer_record import check_tokenizer


def load_weights(
    model: nn.Module,
    ckpt: Mapping[str, Any] | str | Path,
    path: str | Path | None = None,
    *,
    key: str = "ckpt",
    prefix: str = "model.",
) -> int:
    """Copy the ``prefix``-ed weights of ``ckpt`` into ``model`` (strict); returns a count.

    ``ckpt`` is a loaded checkpoint (``path`` names it in messages) or a checkpoint path
    (a file or a sharded folder). A model with a tokenizer must have the checkpoint's
    (its recorded fingerprint). No ``prefix``-ed weights, missing or unexpected keys are a
    :class:`UserError` naming ``key=path`` and a few of the keys.
    """
    if isinstance(ckpt, str | Path):
        path, ckpt = ckpt, load_checkpoint_file(ckpt)
    where = f"{key}={path}"
    if getattr(model, "tokenizer", None) is not None:
        check_tokenizer(model.tokenizer, ckpt, str(path), key)
    state = ckpt.get("state_dict", ckpt)
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise UserError(f"{where}: no '{prefix}*' weights in the checkpoint")
    result = model.load_state_dict(weights, strict=False)
    miss, extra = result.missing_keys, result.unexpected_keys
    if miss or extra:
        raise UserError(
            f"{where}: weights do not match the model ({len(miss)} missing e.g. {miss[:3]}, "
            f"{len(extra)} unexpected e.g. {extra[:3]}); check the model.* settings"
        )
    return len(weights)
