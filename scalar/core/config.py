"""OmegaConf containers as plain Python values (one helper for every layer)."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """A ``DictConfig`` / ``ListConfig`` as dicts and lists (interpolations resolved), a
    tuple as a list; anything else (``None``, dicts, instantiated objects) unchanged."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return list(value)
    return value
