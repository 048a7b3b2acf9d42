"""W&B, offline: the eval predictions table carries box thumbnails, the eval pictures are
logged, and multirun jobs' runs are named by their overrides and grouped by sweep."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.paths import REALDATA, ROOT

IMAGE = REALDATA / "coco" / "images" / "000000397133.jpg"


def record(k: int, image: Path) -> dict:
    with Image.open(image) as im:
        w, h = im.size
    return {"id": f"rec:{k}#{k}", "image": str(image), "image_size": [w, h],
            "prompt": "where is the man?", "regions": [], "output": "<box>",
            "boxes": [[10.0, 20.0, 110.0, 220.0]], "box_formats": ["decoder"],
            "truth": {"box": [0.0, 0.0, w / 2, h / 2], "target": "<box>"},
            "score": {"iou": 0.1}}  # fmt: skip


@pytest.fixture
def offline_logger(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(project="scalar-test", save_dir=str(tmp_path), mode="offline")
    yield logger
    import wandb

    wandb.finish()


def run_files(tmp_path: Path) -> Path:
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    return runs[0] / "files"


def test_predictions_table_has_box_thumbnails_and_pictures_are_logged(offline_logger, tmp_path):
    import wandb

    from scalar.core.pictures import draw_boxes, wandb_thumbnail
    from scalar.eval.report import wandb_pictures, wandb_tables

    missing = {**record(9, IMAGE), "image": str(tmp_path / "absent.jpg")}
    records = [record(0, IMAGE), record(1, IMAGE), record(2, IMAGE), missing]
    thumb = wandb_thumbnail(records[0])
    assert isinstance(thumb, wandb.Image) and max(thumb.image.size) == 256
    assert wandb_thumbnail(missing) is None
    logged = []
    log = offline_logger.experiment.log

    def spy(data, *args, **kwargs):  # the real call, keeping what was logged
        logged.append(data)
        return log(data, *args, **kwargs)

    offline_logger.experiment.log = spy
    assert wandb_tables([offline_logger], {"val": {"rec": records}}, max_images=2) == 1
    pics = []
    for k in range(2):
        path = tmp_path / "pictures" / f"val_rec_{k}.png"
        path.parent.mkdir(exist_ok=True)
        with Image.open(IMAGE) as im:
            pic = draw_boxes(im, [[0.1, 0.1, 0.5, 0.5]], [[0.2, 0.2, 0.6, 0.6]], prompt=f"p{k}")
        pic.save(path)
        pics.append(path)
    assert wandb_pictures([offline_logger], pics) == 1
    files = run_files(tmp_path)
    table = logged[0]["eval/predictions/rec_val"]
    assert isinstance(table, wandb.Table) and table.columns[1] == "picture"
    cells = [row[1] for row in table.data]
    assert [isinstance(c, wandb.Image) for c in cells] == [True, True, False, False]
    assert cells[2] is None and cells[3] is None  # past max_images / unreadable file
    # serialised as W&B stores a run's table (an artifact): image files with their boxes
    art = wandb.Artifact("check", "run_table")
    stored = table.to_json(art)
    for cell in [row[1] for row in stored["data"]][:2]:
        assert cell["_type"] == "image-file" and cell["path"] in art.manifest.entries
        boxes = cell["boxes"]
        assert set(boxes) == {"predictions", "ground_truth"}
    w, h = records[0]["image_size"]
    want = [10 / w, 20 / h, 110 / w, 220 / h]
    pred = cells[0]._boxes["predictions"]._val  # the box_data given to wandb.Image
    (got,) = [b["position"] for b in pred]
    assert [got[k] for k in ("minX", "minY", "maxX", "maxY")] == pytest.approx(want)
    wandb.finish()
    images = logged[1]["eval/pictures/val_rec"]
    assert [type(i) for i in images] == [wandb.Image, wandb.Image]
    assert len(list((files / "media" / "images" / "eval" / "pictures").iterdir())) == 2
    sizes = {
        Image.open(p).size for p in (files / "media" / "images" / "eval" / "pictures").iterdir()
    }
    assert sizes == {Image.open(pics[0]).size}  # the run folder's pictures, not thumbnails


SCRIPT = """
import hydra
from scalar.train.run import wandb_sweep_names

@hydra.main(config_path={conf!r}, config_name="train", version_base="1.3")
def main(cfg):
    wandb_sweep_names(cfg)
    print("RUN", cfg.logger.wandb.name, "|", cfg.logger.wandb.group)

main()
"""


def hydra_app(tmp_path: Path, *args: str) -> list[str]:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT.format(conf=str(ROOT / "conf")))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROJECT_ROOT": str(tmp_path)}
    r = subprocess.run([sys.executable, str(script), *args, "hydra/job_logging=none"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return [ln[4:] for ln in r.stdout.splitlines() if ln.startswith("RUN ")]


def test_multirun_names_by_overrides_and_groups_by_sweep(tmp_path):
    sweep = tmp_path / "sweep_a"
    got = hydra_app(tmp_path, "-m", "loss.contrastive.nu=1,2", "seed=3", f"hydra.sweep.dir={sweep}")
    assert got == [
        "loss.contrastive.nu=1,seed=3 | train/sweep_a",
        "loss.contrastive.nu=2,seed=3 | train/sweep_a",
    ]
    assert hydra_app(tmp_path, "seed=3") == ["train | None"]  # a single run: unchanged
    named = hydra_app(tmp_path, "-m", "seed=1,2", "logger.wandb.name=mine",
                      "logger.wandb.group=g", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert named == ["mine | g", "mine | g"]  # explicit names and groups are kept
