"""Image degradations of the realistic world, in this order: lighting (gain and gamma),
contrast about the mean, Gaussian blur, Gaussian noise, JPEG compression. Strengths are
drawn per scene from the preset's ranges with the scene's generator."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from scalar.data.synth.presets import Preset


def degrade(rng: np.random.Generator, img: np.ndarray, preset: Preset) -> np.ndarray:
    """The degraded ``uint8`` image of the float RGB ``img`` (values 0..255)."""
    gain, gamma = rng.uniform(*preset.degradation.gain), rng.uniform(*preset.degradation.gamma)
    x = 255.0 * np.power(np.clip(img, 0, 255) / 255.0, gamma) * gain
    c = rng.uniform(*preset.degradation.contrast)
    x = (x - x.mean()) * c + x.mean()
    sigma = rng.uniform(*preset.degradation.blur)
    if sigma > 0.05:
        x = ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest")
    std = rng.uniform(*preset.degradation.noise) * 255.0
    if std > 0:
        x = x + rng.normal(0.0, std, size=x.shape)
    out = np.clip(x.round(), 0, 255).astype(np.uint8)
    lo, hi = preset.degradation.jpeg
    if hi > 0:
        quality = int(rng.integers(lo, hi + 1))
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            out = np.asarray(im.convert("RGB")).copy()
    return out
