"""Helpers every reader shares: loading files with clear errors, row checks, image checks."""

from __future__ import annotations

import contextvars
import json
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scalar.data.scene import AnnotationError, Skips


def load_json(path: str | Path) -> Any:
    """Load a JSON file; a missing or unparsable file is one clear error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(path, f"line {e.lineno}", f"not valid JSON ({e.msg})") from None


def load_pickle(path: str | Path) -> Any:
    """Load a pickle (refer-toolkit refs); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a malformed file
        raise AnnotationError(
            path, "-", f"not a readable pickle ({type(e).__name__}: {e})"
        ) from None


def require(row: Any, keys: tuple[str, ...], path: str | Path, index: Any) -> None:
    """Raise AnnotationError naming file and row when ``row`` is not a dict with ``keys``."""
    if not isinstance(row, dict):
        raise AnnotationError(path, index, f"expected an object, got {type(row).__name__}")
    missing = [k for k in keys if k not in row]
    if missing:
        raise AnnotationError(path, index, f"missing key(s) {missing}")


def require_list(data: Any, key: str | None, path: str | Path) -> list:
    """``data[key]`` (or ``data`` itself) must be a list."""
    value = data if key is None else (data.get(key) if isinstance(data, dict) else None)
    if not isinstance(value, list):
        where = "top level" if key is None else f"key '{key}'"
        raise AnnotationError(path, where, "expected a list")
    return value


def image_present(path: str | Path, skips: Skips, check: bool) -> bool:
    """True when the image file exists (or checking is off); counts ``missing_image``."""
    if not check or os.path.isfile(path):
        return True
    skips.add("missing_image", str(path))
    return False


_STRICT = contextvars.ContextVar("scalar_strict_rows", default=False)


@contextmanager
def strict_rows(on: bool = True) -> Iterator[None]:
    """Within this block a malformed row is an ``AnnotationError`` (``data.strict=true``)."""
    token = _STRICT.set(bool(on))
    try:
        yield
    finally:
        _STRICT.reset(token)


def is_strict() -> bool:
    """Whether malformed rows are errors here (inside :func:`strict_rows`)."""
    return _STRICT.get()


def malformed(err: AnnotationError, skips: Skips) -> None:
    """A row that breaks the schema (e.g. a string ``bbox``): counted as ``malformed_row``
    with its file, row and reason, and left out; re-raised under :func:`strict_rows`.

    A file that does not parse at all is never a row: its error is raised before."""
    if _STRICT.get():
        raise err
    skips.add("malformed_row", str(err))
