"""The pinhole camera of the ground-plane world, and 16-bit depth maps.

Camera coordinates: ``X`` right, ``Y`` down, ``Z`` forward (metres). The camera is level
(optical axis parallel to the ground) at ``height`` metres above a ground plane ``Y =
height``; the horizon is the image row through the principal point. A pixel ``(col, row)``
has its centre at ``(col + 0.5, row + 0.5)``; a point projects to ``u = fx X / Z + cx``,
``v = fy Y / Z + cy``.

Depth maps are ``Z`` (distance along the optical axis) in millimetres, stored as 16-bit
greyscale PNGs; 0 marks pixels without a depth (above the horizon, or ground further
than ``MAX_DEPTH_M``).
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scalar.data.synth.png import SIGNATURE, _chunk

MAX_DEPTH_M = 60.0  # ground further than this has no depth (0) in the map
DEPTH_SCALE = 1000.0  # depth map units per metre (millimetres)


@dataclass(frozen=True)
class Camera:
    """Intrinsics (pixels) and the height of a level camera above the ground (metres)."""

    fx: float
    fy: float
    cx: float
    cy: float
    height: float

    @classmethod
    def from_fov(cls, width: int, height_px: int, fov_deg: float, height: float) -> Camera:
        """A camera whose horizontal field of view is ``fov_deg`` (square pixels, principal
        point at the image centre)."""
        f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
        return cls(f, f, width / 2, height_px / 2, height)

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        """Image position ``(u, v)`` of the camera-frame point ``(x, y, z)``."""
        return self.fx * x / z + self.cx, self.fy * y / z + self.cy

    def as_dict(self) -> dict:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def ground_depth(cam: Camera, width: int, height_px: int) -> np.ndarray:
    """``float32 (height_px, width)`` depth of the ground plane at each pixel centre
    (0 at and above the horizon and beyond ``MAX_DEPTH_M``)."""
    v = np.arange(height_px, dtype=np.float64) + 0.5 - cam.cy
    with np.errstate(divide="ignore"):
        z = np.where(v > 0, cam.fy * cam.height / np.where(v > 0, v, 1.0), 0.0)
    z[z > MAX_DEPTH_M] = 0.0
    return np.repeat(z[:, None], width, axis=1).astype(np.float32)


def encode_depth_png(depth_m: np.ndarray) -> bytes:
    """PNG bytes of a depth map in metres, stored as 16-bit millimetres (big-endian)."""
    if depth_m.ndim != 2:
        raise ValueError(f"a depth map is 2-D, got shape {depth_m.shape}")
    mm = np.clip(np.round(depth_m.astype(np.float64) * DEPTH_SCALE), 0, 65535).astype(">u2")
    h, w = mm.shape
    rows = np.zeros((h, 1 + 2 * w), dtype=np.uint8)  # leading 0: filter type none
    rows[:, 1:] = mm.view(np.uint8).reshape(h, 2 * w)
    header = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)  # 16 bit, greyscale
    return (SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + _chunk(b"IEND", b""))  # fmt: skip


def save_depth_png(depth_m: np.ndarray, path: str | Path) -> None:
    Path(path).write_bytes(encode_depth_png(depth_m))


def load_depth_png(path: str | Path) -> np.ndarray:
    """A depth map file (``save_depth_png``) as ``float32`` metres (0: no depth)."""
    from PIL import Image

    with Image.open(path) as im:
        mm = np.asarray(im, dtype=np.float64)
    if mm.ndim != 2:
        raise ValueError(f"{path}: a depth map is a single-channel image, got shape {mm.shape}")
    return (mm / DEPTH_SCALE).astype(np.float32)
