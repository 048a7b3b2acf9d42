"""Evaluation on layouts rebuilt from the real annotation samples (random tiny model).

Images are mostly absent (the samples ship one COCO image): evaluation must produce its
results without a traceback, with missing images counted as skips. The random model's
numbers do not matter; the counts do, and are computed here from the raw JSON.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from scalar.eval.predictions import read_jsonl
from scalar.train.evaluate import evaluate
from tests.conftest import compose_train
from tests.eval.conftest import compose_eval
from tests.paths import REALDATA

pytestmark = pytest.mark.realdata
REFCOCO = REALDATA / "refcoco" / "tfds_ref_coco_dummy_refcoco.json"
COCO = REALDATA / "coco" / "airo_instances_val2017_small.json"
COCO_IMAGE = REALDATA / "coco" / "images" / "000000397133.jpg"


@pytest.fixture(scope="module")
def random_ckpt(tiny_corpus: Path, tmp_path_factory) -> Path:
    """A checkpoint of a randomly initialised tiny model, its config saved as train.py does."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    model_cfg = compose_train(["model=tiny", f"paths.data_dir={tiny_corpus}"]).model
    torch.manual_seed(0)
    model = instantiate(model_cfg)
    path = tmp_path_factory.mktemp("ckpt") / "random.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "scalar": {"config": {"model": OmegaConf.to_container(model_cfg, resolve=True)}},
        },
        path,
    )
    return path


def _refcoco_layout(root: Path) -> dict:
    """refer-toolkit layout (refs(<split_by>).p + instances.json per dataset) from the sample."""
    raw = json.loads(REFCOCO.read_text())
    images = [v["info"] for v in raw["coco_anns"].values()]
    anns = [a for v in raw["coco_anns"].values() for a in v["anns"]]
    cats = [{"id": c, "name": f"cat{c}", "supercategory": f"super{c % 3}"}
            for c in sorted({a["category_id"] for a in anns})]  # fmt: skip
    by_combo: dict = {}
    for r in raw["ref"]:
        rec = {k: v for k, v in r.items() if k not in ("ann", "dataset", "dataset_partition")}
        by_combo.setdefault((r["dataset"], r["dataset_partition"]), []).append(rec)
    for (dataset, split_by), recs in by_combo.items():
        folder = root / dataset
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"refs({split_by}).p", "wb") as f:
            pickle.dump(recs, f)
        inst = {"images": images, "annotations": anns, "categories": cats}
        (folder / "instances.json").write_text(json.dumps(inst))
    return raw


def _sentences(raw: dict, split: str) -> int:
    refs = [r for r in raw["ref"] if (r["dataset"], r["dataset_partition"], r["split"])
            == ("refcoco", "unc", split)]  # fmt: skip
    return sum(len(r["sentences"]) for r in refs)


def _image_of(raw: dict, split: str) -> int:
    (iid,) = {r["image_id"] for r in raw["ref"]
              if (r["dataset"], r["dataset_partition"], r["split"]) == ("refcoco", "unc", split)}  # fmt: skip
    return iid


def test_refcoco_layout_with_missing_and_corrupt_images(random_ckpt, tmp_path):
    raw = _refcoco_layout(tmp_path / "refer")
    images = tmp_path / "train2014"
    images.mkdir()
    name = "COCO_train2014_{:012d}.jpg"
    shutil.copy(COCO_IMAGE, images / name.format(_image_of(raw, "testA")))  # a readable image
    (images / name.format(_image_of(raw, "testB"))).write_bytes(b"not a jpeg")  # corrupt
    # val's image is missing
    cfg = compose_eval([
        f"ckpt={random_ckpt}", "data=refcoco", f"data.root={tmp_path / 'refer'}",
        f"data.source.image_dir={images}", "data.loader.num_workers=0", "splits=[val,testA,testB]",
        "logger=csv", f"paths.output_dir={tmp_path / 'eval'}", f"paths.log_dir={tmp_path}",
        "max_new_tokens=6", "meteor=false", "pictures=1", "trainer.enable_progress_bar=false",
    ])  # fmt: skip
    results = evaluate(cfg, overrides=[])
    rec = {s: results["splits"][s]["rec"] for s in ("val", "testA", "testB")}
    assert rec["val"]["n"] == 0 and rec["val"]["skipped"] == 0  # dropped by the reader
    assert results["data_skips"]["missing_image"] == 1
    assert results["data_skips"]["refs_of_missing_images"] == sum(
        r["split"] == "val" for r in raw["ref"] if (r["dataset"], r["dataset_partition"]) == ("refcoco", "unc")
    )  # fmt: skip
    assert rec["testA"]["n"] == _sentences(raw, "testA") > 0
    assert 0.0 <= rec["testA"]["acc@0.5"] <= 1.0
    assert rec["testB"]["n"] == 0 and rec["testB"]["skipped"] == _sentences(raw, "testB") > 0
    run = Path(cfg.paths.output_dir)
    assert len(read_jsonl(run / "predictions" / "rec_testA.jsonl")) == rec["testA"]["n"]
    skipped = json.loads((run / "predictions" / "skipped.json").read_text())
    assert {r["reason"] for r in skipped["testB"]} == {"corrupt_image"}
    md = (run / "results.md").read_text()
    assert "| testB |" in md and "missing_image: 1" in md
    assert (run / "pictures" / "testA_rec_0.png").is_file()


def test_coco_layout_with_one_image_present(random_ckpt, tmp_path):
    raw = json.loads(COCO.read_text())
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(COCO, root / "annotations" / "instances_val2017.json")
    (root / "val2017").mkdir()
    shutil.copy(COCO_IMAGE, root / "val2017" / COCO_IMAGE.name)
    cfg = compose_eval([
        f"ckpt={random_ckpt}", "data=coco", f"data.root={root}", "data.loader.num_workers=0",
        "split=val", "tasks=[rec,roc,spatial_qa,grounded]", "logger=csv",
        f"paths.output_dir={tmp_path / 'eval'}", f"paths.log_dir={tmp_path}",
        "max_new_tokens=6", "pictures=1", "trainer.enable_progress_bar=false",
    ])  # fmt: skip
    results = evaluate(cfg, overrides=[])
    val = results["splits"]["val"]
    assert results["data_skips"]["missing_image"] == len(raw["images"]) - 1
    anns = [a for a in raw["annotations"] if a["image_id"] == 397133 and not a["iscrowd"]]
    assert val["roc"]["n"] == 3 * len(anns)  # box, point and mask prompts of each object
    assert val["roc"]["box/n"] == val["roc"]["point/n"] == val["roc"]["mask/n"] == len(anns)
    assert val["rec"]["n"] == 0  # COCO has no referring expressions
    assert val["grounded"]["n"] == 1 and val["grounded"]["objects"] == min(len(anns), 20)
    assert val["spatial_qa"]["n"] > 0
    fit_on = results["baselines"]["spatial_qa"]["fit_on"]  # no train file: said, not a crash
    assert fit_on.startswith("unavailable: the train split could not be read")
    assert results["protocol"]["full_split"] is True
