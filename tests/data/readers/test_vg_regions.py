"""The VG reader's region helper process gives exactly what reading in one process gives."""

from __future__ import annotations

import json
import random
from array import array

import pytest

from scalar.data.readers import vg_regions
from scalar.data.readers.common import strict_rows
from scalar.data.readers.vg import read_visual_genome
from scalar.data.scene import AnnotationError, Region
from tests.data.test_fuzz import vg_fuzz


def _everything(corpus) -> str:
    """All fields of all records, with their types (1 and 1.0 differ)."""
    out = []
    for s in corpus.scenes:
        out.append((s.image.id, s.image.path, s.image.width, s.image.height, s.meta))
        out += [(o.id, o.category, o.box, o.category_id, o.synset, o.attributes) for o in s.objects]
        out += [(r.subject, r.predicate, r.object) for r in s.relations]
        out += [(r.id, r.box, r.text) for r in s.regions]
    out.append([(c.id, c.name, c.synset) for c in corpus.categories])
    out.append((corpus.skips.as_dict(), corpus.skips.examples))
    return repr(out)


def _read(root, parallel: bool, monkeypatch):
    monkeypatch.setattr(vg_regions, "PARALLEL_BYTES", 0 if parallel else 1 << 62)
    started = []
    real = vg_regions.RegionJob.__init__

    def spy(self, *a):
        started.append(True)
        real(self, *a)

    monkeypatch.setattr(vg_regions.RegionJob, "__init__", spy)
    corpus = read_visual_genome(root, check_images=False)
    assert bool(started) == parallel
    return corpus


@pytest.mark.parametrize("seed", range(4))
def test_helper_equals_one_process(tmp_path, monkeypatch, seed):
    rng = random.Random(500 + seed)
    vg_fuzz(rng, tmp_path)  # clipped, outside, degenerate boxes, empty phrases, unknown images
    path = tmp_path / "region_descriptions.json"
    data = json.loads(path.read_text())
    data[0]["regions"].append({"id": 77, "x": 1.5, "y": 2, "width": 3, "height": 4, "phrase": "f"})
    data.append({"id": 999, "regions": [{"region_id": 1, "x": 0, "y": 0, "width": 1}]})  # unknown
    path.write_text(json.dumps(data))
    one = _read(tmp_path, False, monkeypatch)
    two = _read(tmp_path, True, monkeypatch)
    assert _everything(two) == _everything(one)
    assert two.skips.counts["unknown_image"] >= 2  # objects.json's and the regions' entry
    assert any(r.box == (1.5, 2.0, 4.5, 6.0) for s in two.scenes for r in s.regions)


@pytest.mark.parametrize("name", ["objects", "region_descriptions"])
def test_helper_failure_gives_the_one_process_error(tmp_path, monkeypatch, name):
    vg_fuzz(random.Random(3), tmp_path)
    path = tmp_path / f"{name}.json"
    data = json.loads(path.read_text())
    key = "objects" if name == "objects" else "regions"
    data[1][key].append({"x": 1})
    path.write_text(json.dumps(data))
    errors = []
    for parallel in (False, True):
        with strict_rows():  # malformed rows are errors only when strict
            with pytest.raises(AnnotationError) as exc:
                _read(tmp_path, parallel, monkeypatch)
        errors.append(str(exc.value))
    assert errors[0] == errors[1]
    where = (
        f"1 object {len(data[1][key]) - 1}"
        if key == "objects"
        else f"1 region {len(data[1][key]) - 1}"
    )
    assert f"row {where}: missing key" in errors[0]


def test_add_regions_by_hand():
    regions: list[Region] = []
    record = (7, [10, 11, 12], ["a", "b", "c"], array("H", [1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8]),
              [(1, (0.5, 0.0, 2.0, 3.0))])  # fmt: skip
    vg_regions.add_regions(regions, record)
    assert regions == [
        Region(10, (1.0, 2.0, 3.0, 4.0), "a"),
        Region(11, (0.5, 0.0, 2.0, 3.0), "b"),
        Region(12, (5.0, 6.0, 7.0, 8.0), "c"),
    ]
    assert all(type(v) is float for r in regions for v in r.box)
