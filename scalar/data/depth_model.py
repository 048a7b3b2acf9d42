"""The depth-estimation hook: a transformers depth model (DPT, Depth Anything, ...) loaded
from a local directory (``save_pretrained`` layout; nothing is downloaded).

``DepthModel(path)(image)`` is the predicted depth resized to the image (bicubic), as a
``float32`` array. Metric models (e.g. Depth Anything's metric checkpoints) predict metres;
relative models predict an unscaled inverse depth, which ``scale`` cannot make metric: the
output of ``spatial_qa`` states which model made the depth (``describe``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class DepthModel:
    """A local transformers depth-estimation model; ``scale`` multiplies its output."""

    def __init__(self, path: str | Path, device: str = "cpu", scale: float = 1.0):
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(
                f"depth model not found: {self.path} has no config.json (a local directory "
                "written by save_pretrained is needed; nothing is downloaded)"
            )
        self.processor = AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModelForDepthEstimation.from_pretrained(self.path, local_files_only=True)
        self.model.to(device).eval()
        self.device, self.scale, self._torch = device, float(scale), torch

    def __call__(self, image) -> np.ndarray:
        """Depth of a PIL image (or ``(H, W, 3)`` uint8 array), ``(H, W)`` ``float32``."""
        torch = self._torch
        if isinstance(image, np.ndarray):
            from PIL import Image

            image = Image.fromarray(image)
        image = image.convert("RGB")
        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            pred = self.model(**inputs).predicted_depth
        if pred.dim() == 3:
            pred = pred[:, None]
        size = (image.height, image.width)
        pred = torch.nn.functional.interpolate(pred.float(), size=size, mode="bicubic")
        return (pred[0, 0].clamp(min=0).cpu().numpy() * self.scale).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"model": str(self.path), "type": self.model.config.model_type,
                "scale": self.scale}  # fmt: skip
