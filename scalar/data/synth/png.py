"""A minimal lossless PNG writer for RGB uint8 arrays (8-bit truecolour, no interlace).

Rows use filter type 0 (none) and one zlib stream at ``LEVEL``: the flat shape scenes
compress to well under 1 KB, and writing costs a fraction of a general encoder's call.
The bytes depend only on the pixels (and zlib), so builds stay reproducible.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
LEVEL = 1  # zlib level: fastest; still about 1 KB per 128 px scene


def _chunk(tag: bytes, data: bytes) -> bytes:
    body = tag + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def encode_png(img: np.ndarray, level: int = LEVEL) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 image."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"encode_png needs an (H, W, 3) uint8 array, got {img.shape} {img.dtype}")
    h, w, _ = img.shape
    rows = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # leading 0: filter type none
    rows[:, 1:] = img.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bit, RGB, deflate, no interlace
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def save_png(img: np.ndarray, path: str | Path) -> None:
    """Write ``img`` (``(H, W, 3)`` uint8) to ``path`` as PNG."""
    Path(path).write_bytes(encode_png(img))
