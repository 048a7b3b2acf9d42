"""Helpers for strategy configs (FSDP wrapping and activation-checkpointing policies)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from scalar.train.checkpoint import UserError


def import_class(path: str) -> type:
    """``"pkg.module.Class"`` -> the class; a bad path is a :class:`UserError` naming it."""
    module_name, _, name = str(path).rpartition(".")
    if not module_name:
        raise UserError(f"not a dotted class path: {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"cannot import {module_name} (for {path}): {err}") from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise UserError(f"{module_name} has no class {name} (for {path})")
    return cls


def layer_classes(names: Sequence[str]) -> set[type]:
    """The set of module classes FSDP wraps (and checkpoints) as units."""
    if not names:
        raise UserError("an FSDP wrap policy needs at least one layer class")
    return {import_class(n) for n in names}
