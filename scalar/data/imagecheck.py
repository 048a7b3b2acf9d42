"""Decode checks of a corpus's images up front (``validate check_decode=true``).

Readers only check that an image file exists; a file that exists but cannot be decoded
(random bytes, a truncated PNG, 0 bytes) is found when training or evaluation first
loads it. ``check_decode(scenes, skips)`` opens every image of ``scenes`` the way the
datasets do and counts ``corrupt_image`` / ``empty_image`` (one per file, with the
path) in ``skips``, so ``python -m scalar.data validate`` can report them before a run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from PIL import Image

from scalar.data.scene import Scene, Skips

DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def failure_reason(path: str, err: BaseException) -> str:
    """The skip reason of an image whose opening raised ``err`` (one of ``DECODE_ERRORS``)."""
    if isinstance(err, FileNotFoundError):
        return "missing_image"
    try:
        empty = os.path.getsize(path) == 0
    except OSError:
        empty = False
    return "empty_image" if empty else "corrupt_image"


def decode_problem(path: str) -> str | None:
    """``None`` when the image decodes, else the skip reason (missing, empty, corrupt)."""
    try:
        with Image.open(path) as im:
            im.load()  # a full decode: verify() misses truncated pixel data
    except DECODE_ERRORS as err:
        return failure_reason(path, err)
    return None


def check_decode(scenes: Iterable[Scene], skips: Skips) -> int:
    """Decode each distinct image of ``scenes``; count failures in ``skips``; returns how
    many files failed."""
    failed, seen = 0, set()
    for scene in scenes:
        path = scene.image.path
        if path in seen:
            continue
        seen.add(path)
        reason = decode_problem(path)
        if reason is not None:
            skips.add(reason, path, image=scene.image.id)
            failed += 1
    return failed
