"""Every format the synthetic corpus writes is read back by the real readers, with images
checked, no row skipped, and counts equal to the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalar.data.readers.refcoco import read_refcoco
from scalar.data.readers.vg import read_visual_genome
from scalar.data.synth import build_synthetic
from tests.data.synth.readback import read_back_coco_lvis

SPLITS = ("train", "val", "test", "heldout")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth_readback")
    opts = dict(n_train=25, n_val=5, n_test=5, n_heldout=6, n_unlabeled=2, texture=True)
    return out, build_synthetic(out, seed=7, **opts)


def _total(manifest: dict, key: str) -> int:
    return sum(manifest["counts"][s][key] for s in SPLITS)


def test_coco_and_lvis_read_back(corpus):
    root, m = corpus
    held = set(m["held_out_categories"])
    for split in SPLITS:
        coco, lvis = read_back_coco_lvis(root, m, split)
        for corp in (coco, lvis):
            assert len(corp.categories) == len(m["categories"])
        assert lvis.meta["version"] == "v1"
        assert all(s.meta["neg_category_ids"] for s in lvis.scenes)
        names = {o.category for s in coco.scenes for o in s.objects}
        assert bool(names & held) == (split == "heldout")
        sup = {o.supercategory for s in coco.scenes for o in s.objects}
        assert sup <= {"round", "polygon", "symbol"}


def test_refcoco_reads_back(corpus):
    root, m = corpus
    pattern = m["refcoco"]["image_pattern"]
    corp = read_refcoco(
        root / "refcoco", "synthetic", "unc", image_dir=root / "images", image_pattern=pattern
    )
    assert not corp.skips, corp.skips.report()
    counts = corp.counts()
    assert counts["images"] == _total(m, "images")
    assert counts["objects"] == _total(m, "objects")
    assert counts["refs"] == _total(m, "refs")
    assert counts["sentences"] == _total(m, "sentences")
    for split in SPLITS:
        one = read_refcoco(
            root / "refcoco", "synthetic", "unc", splits=[split], image_dir=root / "images",
            image_pattern=pattern,
        )  # fmt: skip
        assert one.counts()["refs"] == m["counts"][split]["refs"]
        assert {s.split for s in one.scenes} == {split}


def test_visual_genome_reads_back(corpus):
    root, m = corpus
    corp = read_visual_genome(root / "vg", image_dir=root / "images")
    assert not corp.skips, corp.skips.report()
    counts = corp.counts()
    for key in ("images", "objects", "regions", "relations"):
        assert counts[key] == _total(m, key), key
    attrs = {a for s in corp.scenes for o in s.objects for a in o.attributes}
    assert {"small", "large", "striped", "plain"} <= attrs
    assert attrs - {"small", "large", "striped", "plain"} <= set(m["colours"])
    assert {c.name for c in corp.categories} == {c["name"] for c in m["categories"]}
