"""Fixtures of the evaluation tests: a tiny trained run (once per module) and eval configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CONF, CORPUS, TINY, compose_train

# the tiny settings as eval.py arguments (model comes from the checkpoint)
EVAL_TINY = [
    "data=synthetic",
    "trainer=cpu",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "meteor=false",
    "pictures=2",
    *CORPUS,
]


def compose_eval(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="eval", overrides=overrides)


def eval_args(data_dir: Path, log_dir: Path, *extra: str) -> list[str]:
    return [*EVAL_TINY, f"paths.data_dir={data_dir}", f"paths.log_dir={log_dir}", *extra]


# A short REC-only run at a high learning rate: after 24 steps the model answers every
# expression with a box (not yet a good one), so its validation REC accuracy at IoU 0.25
# is above zero and comparing it with the evaluation's is informative.
TRAIN = [
    "~data.tasks.train",
    "+data.tasks.train={rec:1.0}",
    "data.tasks.val=[rec,roc,caption]",
    "data.splits.max_samples={val:64,heldout:8}",
    "data.loader.batch_size=8",
    "data.loader.group_size=1",  # eight images per step: hits at IoU 0.25 after 24 steps
    "optim.lr=3e-3",
    "trainer.max_steps=24",
    "trainer.val_check_interval=24",
    "stage.module.iou_threshold=0.25",
    "stage.monitor=val/rec/acc@0.25",
]


@pytest.fixture(scope="module")
def trained_run(tiny_corpus: Path, tmp_path_factory) -> Path:
    """A short tiny training run (logs/train/runs/<run>) with its final validation."""
    from scalar.train.run import train

    logs = tmp_path_factory.mktemp("logs")
    run = logs / "train" / "runs" / "2000-01-01_00-00-00"
    cfg = compose_train(
        [
            *TINY,
            f"paths.data_dir={tiny_corpus}",
            f"paths.log_dir={logs}",
            f"paths.output_dir={run}",
            *CORPUS,
            *TRAIN,
        ]  # fmt: skip
    )
    train(cfg)
    return run


@pytest.fixture
def make_eval_cfg(tiny_corpus: Path, tmp_path: Path) -> Callable[..., object]:
    """``make_eval_cfg(*overrides, log_dir=None)`` -> the composed eval config."""

    def make(*overrides: str, log_dir: Path | None = None):
        logs = Path(log_dir) if log_dir is not None else tmp_path / "logs"
        args = eval_args(tiny_corpus, logs, f"paths.output_dir={tmp_path / 'eval'}", *overrides)
        return compose_eval(args)

    return make
