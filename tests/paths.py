"""Paths the tests share."""

from pathlib import Path

from omegaconf import OmegaConf

TESTS = Path(__file__).parent
ROOT = TESTS.parent
# Small real annotation files (COCO, LVIS, RefCOCO, Visual Genome) with provenance in SOURCES.md.
REALDATA = TESTS / "realdata"
# The default world's corpus folder under paths.data_dir (conf/data/synthetic.yaml's root
# follows data.synthetic.difficulty: synthetic_default, synthetic_flat, ...).
_DATA = OmegaConf.load(ROOT / "conf" / "data" / "synthetic.yaml")
SYNTHETIC = f"synthetic_{_DATA.synthetic.difficulty}"
