"""The fast paths of the synthetic build against plain references: the relation table,
the vectorised rasteriser, the PNG writer, the pre-encoded relationships.json, the
single-pass tokenizer texts, worker defaults and the paused garbage collector."""

from __future__ import annotations

import dataclasses
import gc
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scalar.data.prepare import corpus_texts, spread
from scalar.data.synth import build_synthetic
from scalar.data.synth.build import default_workers, paused_gc
from scalar.data.synth.png import encode_png, save_png
from scalar.data.synth.relations import PREDICATES, pair_relations, relation_table
from scalar.data.synth.shapes import UNIT_POLYGONS, rasterise, shape_polygon

SMALL = dict(n_train=8, n_val=3, n_test=2, n_heldout=3, n_unlabeled=2, texture=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_fast")
    build_synthetic(out, seed=5, **SMALL)
    return out


def test_relation_table_matches_relation_holds():
    rng = np.random.default_rng(0)
    size = (100, 80)
    boxes = [(0.0, 0.0, 10.0, 10.0), (20.0, 0.0, 30.0, 10.0), (10.0, 10.0, 20.0, 20.0),
             (0.0, 0.0, 20.0, 10.0), (5.0, 5.0, 5.0, 9.0)]  # fmt: skip
    for _ in range(40):
        x, y = rng.integers(0, 90, 2)
        w, h = rng.integers(0, 30, 2)
        boxes.append((float(x), float(y), float(x + w), float(y + h)))
    table = relation_table(boxes, size)
    seen = set()
    for i, a in enumerate(boxes):
        assert table[i][i] == ()
        for j, b in enumerate(boxes):
            if i != j:
                assert list(table[i][j]) == pair_relations(a, b, size), (a, b)
                seen.update(table[i][j])
    assert seen == set(PREDICATES)


def _inside_reference(poly: list[float], px: float, py: float) -> bool:
    """Even-odd crossing test of one point, edge by edge in plain Python."""
    xs, ys, inside = poly[0::2], poly[1::2], False
    for k in range(len(xs)):
        xa, ya, xb, yb = xs[k], ys[k], xs[(k + 1) % len(xs)], ys[(k + 1) % len(ys)]
        if ya != yb and (ya > py) != (yb > py) and px < xa + (py - ya) * (xb - xa) / (yb - ya):
            inside = not inside
    return inside


@pytest.mark.parametrize("shape", sorted(UNIT_POLYGONS))
def test_rasterise_matches_point_in_polygon(shape):
    for box in ((3, 4, 17, 11), (50, 50, 20, 20), (-5, 60, 30, 12)):  # the last one is clipped
        poly = shape_polygon(shape, box)
        rows, cols, mask = rasterise(poly, 64, 64)
        assert mask.shape == (rows.stop - rows.start, cols.stop - cols.start)
        full = np.zeros((64, 64), dtype=bool)
        full[rows, cols] = mask
        ref = np.array([[_inside_reference(poly, c + 0.5, r + 0.5) for c in range(64)]
                        for r in range(64)])  # fmt: skip
        assert (full == ref).all(), (shape, box)
        assert full.sum() > 0


def test_png_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((1, 1), (7, 13))]
    images.append(np.full((32, 32, 3), 250, dtype=np.uint8))
    for img in images:
        decoded = Image.open(io.BytesIO(encode_png(img)))
        assert decoded.mode == "RGB" and decoded.size == (img.shape[1], img.shape[0])
        assert np.array_equal(np.asarray(decoded), img)
    save_png(images[1], tmp_path / "a.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), images[1])
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), dtype=np.uint8))


def test_relationships_json_is_the_compact_encoding(corpus):
    text = (corpus / "vg/relationships.json").read_text()
    rows = json.loads(text)
    assert json.dumps(rows, separators=(",", ":"), ensure_ascii=True) == text
    objects = {o["object_id"]: o for e in json.loads((corpus / "vg/objects.json").read_text())
               for o in e["objects"]}  # fmt: skip
    ids = []
    for e in rows:
        for rel in e["relationships"]:
            ids.append(rel["relationship_id"])
            for end in (rel["subject"], rel["object"]):
                o = objects[end["object_id"]]
                assert [end[k] for k in "xywh"] == [o[k] for k in "xywh"]
                assert end["name"] == o["names"][0] and end["synsets"] == o["synsets"]
    assert ids == list(range(1, len(ids) + 1))


def test_default_workers():
    assert default_workers(10) == 1  # small builds stay in one process
    assert 1 <= default_workers(10**6) <= 4


def test_paused_gc_restores_the_state():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def _two_pass_texts(corpora) -> list[str]:
    """The reference: every scene built once per box format."""
    from scalar.data.tasks import ALL_TASKS, PROMPTS, TaskBuilder
    from scalar.data.tasks_spatial import SPATIAL_PROMPTS

    out = [*PROMPTS.values(), *SPATIAL_PROMPTS.values()]
    for fmt in ("continuous", "textual"):
        builder = TaskBuilder(ALL_TASKS, box_format=fmt, seed=0)
        for corpus in corpora:
            out += [" ".join(v for v in (c.name, c.supercategory) if v) for c in corpus.categories]
            for scene in corpus.scenes:
                for s in builder.build(scene):
                    out += [s.prompt, s.target]
                    if fmt == "continuous":
                        out += s.meta.get("references", [])
                        out += [c.text for c in s.meta.get("concepts") or []]
    return list(dict.fromkeys(out))


def test_corpus_texts_single_pass_equals_both_formats(corpus):
    from hydra.utils import instantiate

    from scalar.data.__main__ import compose
    from scalar.data.merge import clear_cache, read_all

    data = compose(["data=synthetic", f"data.root={corpus}"]).data
    corpora = [read_all(spec) for spec in instantiate(data.corpora, _convert_="all").values()]
    clear_cache()
    texts = list(dict.fromkeys(corpus_texts(corpora)))
    assert texts == _two_pass_texts(corpora)
    assert any("[" in t and "<box>" not in t for t in texts)  # textual targets are there
    train = corpora[0]
    assert len(train.scenes) == SMALL["n_train"]
    picked = spread(train.scenes, 3)
    assert picked == [train.scenes[0], train.scenes[2], train.scenes[5]]
    capped = list(dict.fromkeys(corpus_texts([train], max_scenes=3)))
    assert capped == _two_pass_texts([dataclasses.replace(train, scenes=picked)])
    assert spread([1, 2], None) == [1, 2] and spread([1, 2], 5) == [1, 2]
