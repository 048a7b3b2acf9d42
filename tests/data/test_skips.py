"""Skips counted exactly, split by split (issue 15, items 5 and 6): a missing image is
counted once in the split it belongs to (not in every split a corpus read whole feeds),
unreadable images are counted and left out of validation as eval.py does, and a row
that breaks the schema is a counted ``malformed_row`` unless ``strict``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.utils import instantiate

from scalar.data.readers.coco import read_coco
from scalar.data.readers.common import strict_rows
from scalar.data.scene import AnnotationError, Skips
from tests.conftest import CORPUS, TINY, compose_train
from tests.paths import SYNTHETIC


def _instances() -> dict:
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": "10, 10, 20, 20"},  # a string
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, 30, 30]},
        ],
    }


def test_a_string_bbox_is_one_malformed_row_and_the_rest_is_read(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(_instances()))
    corpus = read_coco(path, tmp_path, check_images=False)
    assert corpus.skips.as_dict() == {"malformed_row": 1}
    assert (
        "instances.json: row annotations[1]: 'bbox' must be 4 numbers"
        in corpus.skips.examples["malformed_row"][0]
    )
    assert sorted(o.id for s in corpus.scenes for o in s.objects) == [1, 3]
    with strict_rows(), pytest.raises(AnnotationError, match=r"row annotations\[1\]"):
        read_coco(path, tmp_path, check_images=False)


def test_skips_count_each_image_file_once_and_split_by_image():
    a = Skips()
    a.add("missing_image", "/d/1.png", image=1)
    a.add("missing_image", "/d/1.png", image=1)  # the same file again: still one
    a.add("degenerate_box", "obj 7", image=2)
    a.add("duplicate_id", "file-level")  # belongs to no image
    b = Skips()
    b.add("missing_image", "/d/1.png")  # another reader of the same split
    b.add("missing_image", "/d/3.png")
    b.update(a)
    assert b.as_dict() == {"degenerate_box": 1, "duplicate_id": 1, "missing_image": 2}
    first = a.restrict(lambda image: image == 1, unattributed=True)
    assert first.as_dict() == {"duplicate_id": 1, "missing_image": 1}
    second = a.restrict(lambda image: image == 2, unattributed=False)
    assert second.as_dict() == {"degenerate_box": 1}


@pytest.fixture
def corpus_copy(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny synthetic corpus (its tests break images)."""
    dst = tmp_path / "data"
    shutil.copytree(tiny_corpus, dst)
    return dst


def _datamodule(data_dir: Path):
    cfg = compose_train([*TINY, f"paths.data_dir={data_dir}", *CORPUS])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    return dm


def _images_of(data_dir: Path, split: str, n: int) -> list[Path]:
    splits = json.loads((data_dir / SYNTHETIC / "splits.json").read_text())
    ids = sorted(int(k) for k, v in splits.items() if v == split)[:n]
    images = data_dir / SYNTHETIC / "images"
    return [next(images.glob(f"*{i:012d}.png")) for i in ids]


def test_missing_images_are_counted_once_in_their_own_split(corpus_copy):
    for path in _images_of(corpus_copy, "train", 3) + _images_of(corpus_copy, "val", 1):
        path.unlink()
    dm = _datamodule(corpus_copy)
    counts = dm.ledger.as_dict()
    assert counts["train"]["missing_image"] == 3  # refcoco and VG readers: each file once
    assert counts["val"]["missing_image"] == 1
    assert "missing_image" not in counts.get("heldout", {})
    assert "missing_image" not in counts.get("test", {})


def test_validation_leaves_out_broken_images_and_counts_them(corpus_copy):
    corrupt = _images_of(corpus_copy, "val", 1)[0]
    empty = _images_of(corpus_copy, "heldout", 1)[0]
    dm = _datamodule(corpus_copy)
    corrupt.write_bytes(b"\x89PNG not really an image" * 10)
    empty.write_bytes(b"")
    dm.trainer = SimpleNamespace(
        training=False, validating=True, sanity_checking=False, testing=False
    )
    for idx, loader in enumerate(dm.val_dataloader()):
        split = dm.eval_split_names("val")[idx]
        bad = corrupt if split == "val" else empty
        want = [s for s in dm.samples[split] if s.image.path != str(bad)]
        got, left_out = [], []
        for batch in loader:
            batch = dm.on_before_batch_transfer(batch, idx)
            got += batch["samples"]
            left_out += batch["skipped_samples"]
        assert [s.image.path for s in got] == [s.image.path for s in want]  # none duplicated
        assert len(left_out) == len(dm.samples[split]) - len(want) > 0
    counts = dm.ledger.as_dict()
    assert counts["val"]["corrupt_image"] == 1 and counts["heldout"]["empty_image"] == 1
    assert dm.ledger.metrics()["skips/val/corrupt_image"] == 1.0


def test_check_decode_counts_broken_images_up_front(corpus_copy):
    from scalar.data.imagecheck import check_decode

    dm = _datamodule(corpus_copy)
    scenes = dm.corpora["val"].scenes
    Path(scenes[0].image.path).write_bytes(b"garbage" * 20)
    Path(scenes[1].image.path).write_bytes(b"")
    skips = Skips()
    assert check_decode(scenes + scenes, skips) == 2  # each file once
    assert skips.as_dict() == {"corrupt_image": 1, "empty_image": 1}
