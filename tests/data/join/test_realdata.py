"""The join through ``conf/data/joint.yaml`` on real annotation files (tests/realdata).

How the joint sample is built (provenance of every file in tests/realdata/*/SOURCES.md):

- RefCOCO: the real refcoco (google) refs of TFDS's sample, rebuilt in the refer layout
  (refs(google).p + instances.json) over their real COCO 2014 annotations; category names
  and supercategories from the real COCO val2017 sample's category list (COCO ids);
- COCO 2017: ``instances_train2017.json`` holds the same real annotations of those images
  (COCO keeps image and annotation ids from 2014 to 2017: the ids coincide),
  ``instances_val2017.json`` is the real val2017 sample (3 images RefCOCO does not use);
- LVIS: the real v0.5 val sample (100 val2014 images, none of them RefCOCO's: reported as
  joining no image) and LVIS's real ``coco_to_synset.json`` for the COCO category synsets;
- Visual Genome: the 5 real v1.2 images (all with ``coco_id`` null: counted as
  ``join_no_coco_id``) plus ONE HAND-WRITTEN entry for COCO image 460986, because no real
  VG sample with a coco_id of a RefCOCO image is available offline: its boxes are the
  real COCO boxes of three objects brought to VG's 500x334 copy of the image and rounded
  as VG does, its attributes and relation are written here.

No WordNet is installed here, so the supercategory level is COCO's.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from hydra.utils import instantiate

from scalar.data import merge
from scalar.data.chains import LEVELS, build_chain, chain_text, mark_grounding
from scalar.data.validate import check_split, report_lines
from tests.conftest import compose_train
from tests.paths import REALDATA

IMAGE = 460986
VG_W, VG_H = 500, 334
VG_OBJECTS = [  # (coco ann id, vg object id, name, attributes)
    (718034, 9001, "bowl", ["white", "ceramic"]),
    (679838, 9002, "cup", ["tall", "white"]),
    (683672, 9003, "cup", ["white"]),
]


def _coco_categories() -> list[dict]:
    data = json.loads((REALDATA / "coco" / "airo_instances_val2017_small.json").read_text())
    return data["categories"]


def _write(root: Path) -> None:
    tfds = json.loads((REALDATA / "refcoco" / "tfds_ref_coco_dummy_refcoco.json").read_text())
    images = [v["info"] for v in tfds["coco_anns"].values()]
    anns = [a for v in tfds["coco_anns"].values() for a in v["anns"]]
    inst = {"images": images, "annotations": anns, "categories": _coco_categories()}
    refs = [
        {k: v for k, v in r.items() if k not in ("ann", "dataset", "dataset_partition")}
        for r in tfds["ref"]
        if (r["dataset"], r["dataset_partition"]) == ("refcoco", "google")
    ]
    (root / "refcoco" / "refcoco").mkdir(parents=True)
    (root / "refcoco" / "refcoco" / "instances.json").write_text(json.dumps(inst))
    with open(root / "refcoco" / "refcoco" / "refs(google).p", "wb") as f:
        pickle.dump(refs, f)
    (root / "coco" / "annotations").mkdir(parents=True)
    (root / "coco" / "annotations" / "instances_train2017.json").write_text(json.dumps(inst))
    shutil.copy(REALDATA / "coco" / "airo_instances_val2017_small.json",
                root / "coco" / "annotations" / "instances_val2017.json")  # fmt: skip
    (root / "lvis").mkdir()
    shutil.copy(
        REALDATA / "lvis" / "lvis_api_lvis_val_100_v0.5.json", root / "lvis" / "lvis_v1_train.json"
    )
    lvis = json.loads((root / "lvis" / "lvis_v1_train.json").read_text())
    (root / "lvis" / "lvis_v1_val.json").write_text(
        json.dumps({"images": [], "annotations": [], "categories": lvis["categories"]})
    )
    shutil.copy(
        REALDATA / "lvis" / "lvis_api_coco_to_synset.json", root / "lvis" / "coco_to_synset.json"
    )
    vg = root / "vg"
    shutil.copytree(REALDATA / "visual_genome" / "v1.2", vg)
    by_id = {a["id"]: a for a in anns}
    info = tfds["coco_anns"][str(IMAGE)]["info"]
    sx, sy = VG_W / info["width"], VG_H / info["height"]
    rows = []
    for ann_id, oid, name, attrs in VG_OBJECTS:
        x, y, w, h = by_id[ann_id]["bbox"]
        rows.append({"object_id": oid, "x": round(x * sx), "y": round(y * sy), "w": round(w * sx),
                     "h": round(h * sy), "names": [name], "synsets": [f"{name}.n.01"],
                     "attributes": attrs})  # fmt: skip
    plain = [{k: v for k, v in r.items() if k != "attributes"} for r in rows]
    rel = {"relationship_id": 1, "predicate": "next to", "synsets": [],
           "subject": {**plain[0], "name": "bowl"}, "object": {**plain[1], "name": "cup"}}  # fmt: skip
    extra = {
        "image_data.json": {
            "image_id": 99,
            "coco_id": IMAGE,
            "width": VG_W,
            "height": VG_H,
            "url": "https://cs.stanford.edu/people/rak248/VG_100K/99.jpg",
            "flickr_id": None,
        },  # fmt: skip
        "objects.json": {"image_id": 99, "objects": plain},
        "attributes.json": {"image_id": 99, "attributes": rows},
        "relationships.json": {"image_id": 99, "relationships": [rel]},
        "region_descriptions.json": {"id": 99, "regions": []},
    }
    for name, entry in extra.items():
        data = json.loads((vg / name).read_text())
        (vg / name).write_text(json.dumps(data + [entry]))


@pytest.fixture
def joint(tmp_path):
    _write(tmp_path)
    cfg = compose_train(["paths.output_dir=/tmp/scalar-test-run", "data=joint",
                         f"data.root={tmp_path}", "data.source.check_images=false", "data.source.split_by=google"])  # fmt: skip
    merge.clear_cache()
    yield instantiate(cfg.data.corpora.train, _convert_="all")()
    merge.clear_cache()


def test_real_refcoco_referent_has_all_six_levels(joint):
    rep = joint.meta["join"]
    coco = rep["refcoco~coco"]  # the same real annotations: every object matches itself
    assert coco["images"] == 1 and coco["matched"] == 12  # the 12 annotations of image 460986
    assert coco["unmatched_base"] == coco["unmatched_other"] == coco["conflicting"] == 0
    assert rep["refcoco~lvis"]["images"] == 0 and rep["refcoco~lvis"]["images_other"] == 100
    assert rep["refcoco~vg"]["images"] == 1
    assert (rep["refcoco~vg"]["matched"], rep["refcoco~vg"]["conflicting"]) == (3, 0)
    assert joint.skips.as_dict()["join_no_coco_id"] == 5  # the real VG images: coco_id null
    scene = next(s for s in joint.scenes if s.image.id == IMAGE)
    bowl = scene.object_by_id()[718034]
    assert bowl.synset == "bowl.n.03"  # from LVIS's real coco_to_synset.json
    chain = mark_grounding(scene, build_chain(scene, bowl))
    print(f"RefCOCO ref of ann 718034 (image {IMAGE}):", chain_text(chain))
    for c in chain:
        print(
            f"  {c.level:14s} grounds={c.grounds!s:5s} box={tuple(round(v, 1) for v in c.box)} {c.text}"
        )
    assert [c.level for c in chain] == list(LEVELS)
    assert [c.text for c in chain[1:5]] == [
        "a kitchen", "a bowl", "ceramic white bowl", "ceramic white bowl next to the tall cup"]  # fmt: skip
    assert chain[5].text in ("far right pottery piece", "cup on far right", "right one")
    x, y, w, h = 489.71, 265.92, 150.29, 140.42  # the real COCO box of ann 718034
    assert chain[2].box == pytest.approx((x, y, x + w, y + h))
    lines = report_lines({"splits": {"train": check_split(joint)}})
    assert any("join refcoco~vg: 1 images, matched 3" in line for line in lines)
