"""Shared check of the synthetic builds: the COCO and LVIS files read back by the real readers."""

from __future__ import annotations

from pathlib import Path

from scalar.data.readers.coco import read_coco
from scalar.data.readers.lvis import read_lvis
from scalar.data.scene import Corpus


def read_back_coco_lvis(root: Path, manifest: dict, split: str) -> tuple[Corpus, Corpus]:
    """Read ``split``'s COCO and LVIS files of the build in ``root``; each is read without a
    skip, with the manifest's image and object counts, and every image file exists."""
    c = manifest["counts"][split]
    coco = read_coco(root / f"coco/annotations/instances_{split}.json", root / "images", split)
    lvis = read_lvis(root / f"lvis/lvis_v1_{split}.json", root, split)
    for corp in (coco, lvis):
        assert not corp.skips, corp.skips.report()
        assert corp.counts()["images"] == c["images"]
        assert corp.counts()["objects"] == c["objects"]
        assert all(Path(s.image.path).is_file() for s in corp.scenes)
    return coco, lvis
