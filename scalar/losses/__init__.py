"""Losses shared by the training stages."""

from scalar.losses.box import BoxLoss
from scalar.losses.contrastive import InfoNCELoss, TDistContrastiveLoss, multi_positive_ce
from scalar.losses.lm import LMLoss

__all__ = ["BoxLoss", "InfoNCELoss", "LMLoss", "TDistContrastiveLoss", "multi_positive_ce"]
