"""Synthetic shape scenes written in the real annotation formats (see ``build``)."""

from scalar.data.synth.build import build_synthetic
from scalar.data.synth.layout import SynthConfig

__all__ = ["SynthConfig", "build_synthetic"]
