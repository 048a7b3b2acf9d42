"""The synthetic corpus through the join: its VG file with its own object ids (and, when
asked, jittered boxes) joined onto RefCOCO by box IoU gives today's chains (shared ids)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from scalar.data import merge
from scalar.data.chains import build_chain, mark_grounding
from scalar.data.join.joint import read_joint
from scalar.data.readers.refcoco import read_refcoco
from scalar.data.readers.vg import read_visual_genome
from scalar.data.synth import build_synthetic
from scalar.data.synth.vg_view import VG_ID_OFFSET

SMALL = dict(seed=3, n_train=40, n_val=0, n_test=0, n_heldout=0, n_unlabeled=0, workers=1)


def _refcoco(root: Path):
    return partial(read_refcoco, root / "refcoco", "synthetic", "unc", splits=["train"],
                   image_dir=root / "images", image_pattern="COCO_train2014_{image_id:012d}.png",
                   check_images=False)  # fmt: skip


def _today(root: Path):
    """Today's reading: RefCOCO and VG merged by shared object ids."""
    vg = read_visual_genome(root / "vg", check_images=False)
    return merge.merge_corpora(_refcoco(root)(), vg)


def _joined(root: Path, **kw):
    merge.clear_cache()
    try:
        return read_joint(refcoco=_refcoco(root),
                          vg=partial(read_visual_genome, root / "vg", check_images=False), **kw)  # fmt: skip
    finally:
        merge.clear_cache()


def _chains(corpus) -> dict:
    out = {}
    for s in corpus.scenes:
        for o in s.objects:
            if isinstance(o.id, int):  # the base (RefCOCO) objects
                chain = mark_grounding(s, build_chain(s, o))
                out[(s.image.id, o.id)] = [(c.level, c.text, c.box, c.grounds) for c in chain]
    return out


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    shared = tmp_path_factory.mktemp("shared")
    own = tmp_path_factory.mktemp("own")
    jit = tmp_path_factory.mktemp("jitter")
    build_synthetic(shared, **SMALL)
    build_synthetic(own, vg_own_ids=True, **SMALL)
    build_synthetic(jit, vg_own_ids=True, vg_jitter=0.15, **SMALL)
    return shared, own, jit


def test_vg_file_has_its_own_ids_and_only_the_vg_files_change(builds):
    shared, own, jit = builds
    a = json.loads((shared / "vg" / "objects.json").read_text())
    b = json.loads((own / "vg" / "objects.json").read_text())
    ids_a = [o["object_id"] for e in a for o in e["objects"]]
    assert [o["object_id"] for e in b for o in e["objects"]] == [VG_ID_OFFSET + i for i in ids_a]
    for name in ("refcoco/synthetic/instances.json", "images/COCO_train2014_000000000001.png"):
        assert (
            (shared / name).read_bytes() == (own / name).read_bytes() == (jit / name).read_bytes()
        )
    assert "vg_view" not in json.loads((shared / "manifest.json").read_text())
    assert json.loads((jit / "manifest.json").read_text())["vg_view"] == {
        "vg_own_ids": True, "vg_jitter": 0.15}  # fmt: skip


def test_chains_through_the_join_equal_todays_without_jitter(builds):
    shared, own, _ = builds
    today, joined = _chains(_today(shared)), _joined(own)
    assert len(today) > 100
    assert _chains(joined) == today
    rep = joined.meta["join"]["refcoco~vg"]
    assert rep["unmatched_base"] == rep["unmatched_other"] == rep["conflicting"] == 0
    assert rep["matched"] == len(today)


def test_jitter_degrades_only_scenes_with_unmatched_objects(builds):
    shared, _, jit = builds
    today = _chains(_today(shared))
    joined = _joined(jit, keep_unmatched=False)
    rep = joined.meta["join"]["refcoco~vg"]
    assert 0 < rep["unmatched_base"] < rep["matched"]  # the jitter costs some matches
    got = _chains(joined)
    assert got.keys() == today.keys()
    # a scene whose objects all matched gives today's chains exactly
    whole = {s.image.id for s in joined.scenes}
    vg = read_visual_genome(jit / "vg", check_images=False)
    n_vg = {s.image.id: len(s.objects) for s in vg.scenes}
    matched_all = {i for i in whole if _matched(joined, i) == n_vg[i]}
    assert matched_all and matched_all != whole
    for key, chain in today.items():
        if key[0] in matched_all:
            assert got[key] == chain, key
    differ = sum(got[k] != today[k] for k in today)
    in_unmatched = sum(k[0] not in matched_all for k in today)
    assert differ <= in_unmatched
    print(f"jitter 0.15: {rep}; chains differing {differ}/{len(today)}")


def _matched(corpus, image_id) -> int:
    s = next(s for s in corpus.scenes if s.image.id == image_id)
    return sum(bool(o.attributes) for o in s.objects)


def test_bad_jitter_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"vg_jitter .* must be in \[0, 0.5\)"):
        build_synthetic(tmp_path, vg_jitter=0.7, **SMALL)
