"""Evaluation metrics (torchmetrics): REC Acc@0.5, text accuracy, caption CIDEr-D."""

from scalar.metrics.caption import CaptionCIDEr, cider_d
from scalar.metrics.rec import RecAccuracy
from scalar.metrics.text import TextAccuracy, normalize_answer, simple_tokenize

__all__ = [
    "CaptionCIDEr",
    "RecAccuracy",
    "TextAccuracy",
    "cider_d",
    "normalize_answer",
    "simple_tokenize",
]
