"""Atomic JSON and JSON Lines writers: a reader never sees half a file.

Each writes to ``<path>.tmp`` beside the target (creating the folder) and renames it over
the target with ``os.replace``, so an interrupted write leaves the previous file intact.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_suffix(path.suffix + ".tmp")


def write_json(path: str | Path, data: Any) -> None:
    """``data`` as indented JSON with sorted keys (``str()`` of what JSON cannot hold)."""
    path = Path(path)
    tmp = _tmp(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def finite(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as ``None`` (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """One JSON object per line (non-finite floats as ``null``); returns the count."""
    path = Path(path)
    tmp = _tmp(path)
    n = 0
    with open(tmp, "w") as f:
        for rec in records:
            f.write(json.dumps(finite(rec), default=str) + "\n")
            n += 1
    os.replace(tmp, path)
    return n
