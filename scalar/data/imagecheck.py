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


def decode_problem(path: str) -> str | None:
    """``None`` when the image decodes, else the skip reason (missing, empty, corrupt)."""
    try:
        if os.path.getsize(path) == 0:
            return "empty_image"
        with Image.open(path) as im:
            im.load()  # a full decode: verify() misses truncated pixel data
    except FileNotFoundError:
        return "missing_image"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "corrupt_image"
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
