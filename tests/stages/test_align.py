"""AlignModule: validation metrics from generation, pictures, optimizer groups, W&B images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from PIL import Image

from scalar.metrics import cider_d
from scalar.stages.align import AlignModule, sample_ids
from scalar.train.run import build

FAR = (0.0, 0.0, 0.02, 0.02)  # a box that overlaps no synthetic object by IoU >= 0.5


class FakeWandb(WandbLogger):
    """A W&B logger that records what it would send (no W&B run is started)."""

    def __init__(self):  # noqa: D107 - deliberately skips WandbLogger.__init__
        self.sent: list[dict] = []

    def log_metrics(self, metrics, step=None):
        self.sent.append(dict(metrics))

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    @property
    def save_dir(self):
        return None

    def save(self):
        pass

    def finalize(self, status):
        pass


def _oracle(wrong_kind: str):
    """generate() stand-in: true boxes and answers, except REC rows of one sentence kind."""

    def generate(batch, **kwargs):
        texts, boxes, boxes_px = [], [], []
        for i, s in enumerate(batch["samples"]):
            own = batch["target_boxes"][batch["target_batch"] == i]
            box = tuple(own[0].tolist()) if len(own) else None
            if s.task == "rec" and s.meta.get("sent_kind") == wrong_kind:
                box = FAR
            w, h = batch["image_sizes"][i].tolist()
            boxes.append([box] if box else [])
            boxes_px.append([(box[0] * w, box[1] * h, box[2] * w, box[3] * h)] if box else [])
            texts.append(s.meta["references"][0] if s.task == "caption" else s.target)
        formats = [["decoder"] * len(b) for b in boxes]
        return {"texts": texts, "boxes": boxes, "boxes_px": boxes_px, "box_formats": formats}

    return generate


def test_validation_metrics_pictures_and_wandb_images(make_cfg, tmp_path: Path):
    parts = build(make_cfg("stage.module.pictures=3", run_dir=tmp_path / "run"))
    module, dm, trainer = parts["module"], parts["datamodule"], parts["trainer"]
    fake = FakeWandb()
    trainer.loggers = [*trainer.loggers, fake]
    module.model.generate = _oracle(wrong_kind="relational")
    result = trainer.validate(module, datamodule=dm)[0]

    val = dm.samples["val"]
    rec = [s for s in val if s.task == "rec"]
    kinds = [s.meta.get("sent_kind") for s in rec]
    assert "relational" in kinds and len(set(kinds)) > 1  # the corpus exercises both outcomes
    assert result["val/rec/acc@0.5"] == pytest.approx(1 - kinds.count("relational") / len(rec))
    assert result["val/rec/relational/acc@0.5"] == 0.0
    other = next(k for k in kinds if k != "relational")
    assert result[f"val/rec/{other}/acc@0.5"] == 1.0
    assert result["val/roc/acc"] == 1.0
    caps = [s for s in val if s.task == "caption"]
    want = cider_d([s.meta["references"][0] for s in caps], [s.meta["references"] for s in caps])[0]
    assert result["val/caption/cider"] == pytest.approx(want)
    # the held-out split is scored separately
    held = [s for s in dm.samples["heldout"] if s.task == "rec"]
    if held:
        assert "val/heldout/rec/acc@0.5" in result
    assert "val/loss" in result and "val/lm" in result

    pics = sorted((tmp_path / "run" / "pictures").glob("validate_*.png"))
    assert 1 <= len(pics) <= 3
    colours = set()
    for p in pics:
        colours |= {tuple(c) for c in np.asarray(Image.open(p).convert("RGB")).reshape(-1, 3)}
    assert (230, 30, 30) in colours and (30, 200, 60) in colours  # predicted red, truth green

    images = [m["val/pictures"] for m in fake.sent if "val/pictures" in m]
    assert len(images) == 1 and len(images[0]) == len(pics)
    first = images[0][0]
    assert set(first._boxes) == {"predictions", "ground_truth"}  # wandb.Image with boxes


def test_optimizer_covers_trainable_parameters_only(make_cfg, tmp_path: Path):
    cfg = make_cfg("model.trainable.vision=false", "trainer.max_steps=1",
                   "trainer.limit_val_batches=0", "validate=false")  # fmt: skip
    parts = build(cfg)
    module, trainer = parts["module"], parts["trainer"]
    trainer.fit(module, datamodule=parts["datamodule"])
    groups = trainer.optimizers[0].param_groups
    in_opt = {id(p) for g in groups for p in g["params"]}
    vision = {id(p) for p in module.model.vision.parameters()}
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert vision and not (vision & in_opt)  # the frozen tower is not optimised
    assert in_opt == trainable
    assert groups[1]["weight_decay"] == 0.0 and all(p.ndim < 2 for p in groups[1]["params"])
    assert groups[0]["weight_decay"] == cfg.optim.weight_decay
    assert all(p.ndim >= 2 for p in groups[0]["params"])
    sched = trainer.lr_scheduler_configs[0]
    assert sched.interval == "step"
    assert sched.scheduler.lr_lambdas[0].total_steps == trainer.estimated_stepping_batches == 1


def test_trainable_spec_is_applied_over_the_model_default(make_cfg):
    parts = build(make_cfg("model.trainable.vision=false", "+stage.module.trainable.vision=true"))
    model = parts["module"].model
    assert all(p.requires_grad for p in model.vision.parameters())


def test_bad_settings_are_clear_errors():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        AlignModule(model, torch.nn.Identity(), torch.optim.AdamW, nan_guard={"policy": "ignore"})
    with pytest.raises(ValueError, match="eval_tasks"):
        AlignModule(model, torch.nn.Identity(), torch.optim.AdamW, eval_tasks=["vqa"])


def test_sample_ids_are_readable():
    class S:
        def __init__(self, task, meta):
            self.task, self.meta = task, meta

    batch = {"samples": [S("rec", {"image_id": 3, "ref_id": 9}), S("caption", {"image_id": 4}),
                         S("roc", {"id": "x-1"})]}  # fmt: skip
    assert sample_ids(batch) == ["rec:3/9", "caption:4", "x-1"]
    assert sample_ids({}) == []
