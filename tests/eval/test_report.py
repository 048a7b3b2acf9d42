"""Results table, W&B predictions table, model config from a checkpoint, predictions ids."""

from __future__ import annotations

import json

from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from scalar.eval.report import results_markdown, wandb_tables
from scalar.train.evaluate import data_world, model_config

RESULTS = {
    "checkpoint": "run/checkpoints/last.ckpt",
    "protocol": {
        "decoding": {"max_new_tokens": 16},
        "full_split": True,
        "max_samples_per_split": None,
        "coordinates": "xyxy pixels",
    },  # fmt: skip
    "splits": {
        "val": {
            "rec": {
                "acc@0.5": 0.8125,
                "miou": 0.5,
                "n": 16,
                "unparseable": 1,
                "skipped": 0,
                "held_out/acc@0.5": 0.25,
                "held_out/n": 4,
            },
            "spatial_qa": {"acc": 0.5, "quant/mre": 0.375, "n": 4, "unparseable": 0},
        },
        "testA": {"rec": {"acc@0.5": float("nan"), "n": 0, "unparseable": 0, "skipped": 3}},
    },  # fmt: skip
    "unavailable": {"meteor": "METEOR unavailable: no Java runtime found"},
    "data_skips": {"missing_image": 2},
}


def test_markdown_table_shows_percent_counts_and_reasons():
    md = results_markdown(RESULTS)
    assert "| split | acc@0.5 | miou | n | unparseable | skipped |" in md
    assert "| val | 81.25 | 50.00 | 16 | 1 | 0 |" in md
    assert "| testA | - | - | 0 | 0 | 3 |" in md
    assert "| val / held_out | 25.00 | 4 |" in md  # group rows, percent and count
    assert "| val | 50.00 | 0.3750 | 4 | 0 |" in md  # mre is not a percentage
    assert "- METEOR unavailable: no Java runtime found" in md and "- missing_image: 2" in md


class RecordingWandb(WandbLogger):
    """A WandbLogger that records tables instead of starting a W&B run."""

    def __init__(self):
        super().__init__(mode="disabled")
        self.tables = {}

    def log_table(self, key, columns=None, data=None, dataframe=None, step=None):
        self.tables[key] = (columns, data)


def test_wandb_table_rows():
    rec = {"id": "rec:1/2#0", "image": "a.png", "prompt": "where is the cat?", "output": "<box>",
           "boxes": [[1.0, 2.0, 3.0, 4.0]], "truth": {"box": [1, 2, 3, 5]},
           "score": {"iou": 0.75, "parsed": True}}  # fmt: skip
    logger = RecordingWandb()
    n = wandb_tables([logger], {"val": {"rec": [rec, rec, rec], "roc": []}}, max_rows=2)
    assert n == 1 and list(logger.tables) == ["eval/predictions/rec_val"]
    columns, data = logger.tables["eval/predictions/rec_val"]
    assert columns[:5] == ["id", "picture", "image", "prompt", "output"] and len(data) == 2
    assert data[0][1] is None  # a.png is not readable: no thumbnail
    assert (
        json.loads(data[0][5]) == [[1.0, 2.0, 3.0, 4.0]] and json.loads(data[0][7])["iou"] == 0.75
    )


def test_model_config_comes_from_the_checkpoint_with_cli_overrides():
    cfg = OmegaConf.create({
        "model_source": "ckpt",
        "model": {"name": "group", "llm": {"dtype": "bfloat16", "path": None}, "region_tokens": 4},
    })  # fmt: skip
    saved = {
        "model": {"name": "saved", "llm": {"dtype": "float32", "path": "/x"}, "region_tokens": 2}
    }
    got = model_config(cfg, saved, ["model.llm.dtype=bfloat16", "data.loader.batch_size=3"])
    assert got.name == "saved" and got.region_tokens == 2 and got.llm.path == "/x"
    assert got.llm.dtype == "bfloat16"  # the command line wins
    assert model_config(cfg, saved, ["model=tiny"]).name == "group"  # another model group
    cfg.model_source = "config"
    assert model_config(cfg, saved, []).name == "group"
    cfg.model_source = "ckpt"
    assert model_config(cfg, {}, []).name == "group"  # no saved config: the group


def test_eval_scores_the_checkpoints_synthetic_world_unless_the_command_line_names_one():
    def cfg():
        return OmegaConf.create({
            "paths": {"data_dir": "d"},
            "data": {"root": "${paths.data_dir}/synthetic_${data.synthetic.difficulty}",
                     "synthetic": {"difficulty": "flat", "geometry": "planar"}},
        })  # fmt: skip

    saved = {"data": {"synthetic": {"difficulty": "default", "geometry": "ground_plane"}}}
    c = cfg()
    assert data_world(c, saved, ["ckpt=x.ckpt"]) == {
        "difficulty": "default", "geometry": "ground_plane"
    }  # fmt: skip
    assert c.data.root == "d/synthetic_default"  # the corpus folder follows the world
    for named in (["data.synthetic.difficulty=flat"], ["data=refcoco"], ["data.root=/r"]):
        c = cfg()
        assert data_world(c, saved, named) == {} and c.data.synthetic.difficulty == "flat"
    c = cfg()  # a checkpoint without a synthetic world (real corpora) changes nothing
    assert (
        data_world(c, {"data": {"root": "/coco"}}, []) == {} and c.data.root == "d/synthetic_flat"
    )


def test_markdown_cells_carry_the_interval_and_the_sample_count():
    rec = {**RESULTS["splits"]["val"]["rec"],
           "ci95": {"acc@0.5": [0.625, 0.9375], "miou": [0.375, 0.625],
                    "held_out/acc@0.5": [0.0, 0.75]}}  # fmt: skip
    protocol = {**RESULTS["protocol"],
                "confidence_intervals": {"level": 0.95, "resamples": 1000, "seed": 0}}  # fmt: skip
    md = results_markdown({**RESULTS, "protocol": protocol, "splits": {"val": {"rec": rec}}})
    assert "| val | 81.25 [62.50, 93.75] (n=16) | 50.00 [37.50, 62.50] (n=16) | 16 | 1 | 0 |" in md
    assert "| val / held_out | 25.00 [0.00, 75.00] (n=4) | 4 |" in md  # the group's own n
    assert "95% bootstrap interval] (n=samples), 1000 resamples, seed 0." in md
    assert "ci95" not in md
