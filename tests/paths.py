"""Paths the tests share."""

from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent
# Small real annotation files (COCO, LVIS, RefCOCO, Visual Genome) with provenance in SOURCES.md.
REALDATA = TESTS / "realdata"
