"""Typed checks of the config values users set, before anything is built.

``check_values(cfg)`` returns one line naming the first bad key and what it must be, or
``None``. Keys absent from a config (eval has no ``optim``) are not checked. Hydra
parses ``trainer.max_steps=abc`` as a string; without this check the mistake surfaces
deep inside Lightning or torch as a traceback that does not name the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

_MISSING = object()


def _int(lo: int | None = None, null: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v is None and null:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
            bound = f" >= {lo}" if lo is not None else ""
            return f"an integer{bound}" + (" or null" if null else "")
        return None

    return check


def _float(lo: float = -math.inf, strict: bool = False, null: bool = False):
    def check(v: Any) -> str | None:
        if v is None and null:
            return None
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v > lo if strict else v >= lo)
        if not ok:
            bound = "" if lo == -math.inf else (f" > {lo:g}" if strict else f" >= {lo:g}")
            return f"a finite number{bound}" + (" or null" if null else "")
        return None

    return check


def _choice(*names: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in names else "one of " + ", ".join(names)

    return check


def _interval(v: Any) -> str | None:
    """``val_check_interval``: batches (int >= 1) or a fraction of an epoch in (0, 1]."""
    if isinstance(v, bool):
        return "an integer >= 1 (batches) or a fraction in (0, 1]"
    if isinstance(v, int) and v >= 1 or isinstance(v, float) and 0 < v <= 1:
        return None
    return "an integer >= 1 (batches) or a fraction in (0, 1]"


def _str_or_null(v: Any) -> str | None:
    return None if v is None or isinstance(v, str) else "a path, 'last' or null"


SCHEMA: dict[str, Callable[[Any], str | None]] = {
    "seed": _int(0),
    "nan_policy": _choice("skip", "stop"),
    "nan_max_skips": _int(0),
    "ckpt_path": _str_or_null,
    "init_from": _str_or_null,
    "trainer.max_steps": _int(-1),
    "trainer.max_epochs": _int(-1, null=True),
    "trainer.val_check_interval": _interval,
    "trainer.log_every_n_steps": _int(1),
    "trainer.accumulate_grad_batches": _int(1),
    "trainer.num_sanity_val_steps": _int(-1),
    "trainer.gradient_clip_val": _float(0.0, null=True),
    "optim.lr": _float(0.0, strict=True),
    "optim.weight_decay": _float(0.0),
    "optim.scheduler.warmup_steps": _int(0),
    "data.loader.batch_size": _int(1),
    "data.loader.val_batch_size": _int(1, null=True),
    "data.loader.num_workers": _int(0),
    "data.loader.group_size": _int(1),
    "batch_size": _int(1),
    "max_new_tokens": _int(1),
    "stage.monitor_mode": _choice("min", "max"),
    "callbacks.step_checkpoint.every_n_train_steps": _int(1, null=True),
    "resume.allow_config_change": lambda v: None if isinstance(v, bool) else "true or false",
}


def check_values(cfg: DictConfig) -> str | None:
    """One line about the first value of ``SCHEMA`` that ``cfg`` sets wrongly, or None."""
    for key, check in SCHEMA.items():
        try:
            value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
        except Exception as err:  # noqa: BLE001 - an interpolation that does not resolve
            return f"{key}: {str(err).splitlines()[0]}"
        if value is _MISSING or isinstance(value, DictConfig):
            continue
        want = check(value)
        if want:
            return f"{key}={value!r} is not valid: it must be {want}"
    return None
