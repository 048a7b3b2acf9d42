"""Evaluation metrics (torchmetrics, records gathered across ranks): one family, used by
training-time validation and eval.py alike through :mod:`scalar.eval.scoring`."""

from scalar.metrics.caption import CaptionScores, caption_scores, cider_d
from scalar.metrics.classification import ClassificationAccuracy
from scalar.metrics.grounding import THRESHOLDS, GroundedPR, RecBoxMetrics
from scalar.metrics.spatial_qa import SpatialQAMetrics
from scalar.metrics.text import normalize_answer, simple_tokenize

__all__ = [
    "THRESHOLDS",
    "CaptionScores",
    "ClassificationAccuracy",
    "GroundedPR",
    "RecBoxMetrics",
    "SpatialQAMetrics",
    "caption_scores",
    "cider_d",
    "normalize_answer",
    "simple_tokenize",
]
