"""Shared fixtures: the real Hydra config with tiny settings and a tiny synthetic corpus.

``make_cfg(*overrides)`` composes ``conf/train.yaml`` with ``model=tiny data=synthetic
trainer=cpu logger=csv`` on a 20-image synthetic corpus built once per session, small
batches and a few steps; the run folder is a fresh temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# the tiny corpus: 20 training images, 2 per evaluation split
CORPUS = [
    "data.synthetic.n_train=20",
    "data.synthetic.n_val=2",
    "data.synthetic.n_test=2",
    "data.synthetic.n_heldout=2",
    "data.synthetic.n_unlabeled=1",
]
# tiny everything else: batches, evaluation caps, steps
TINY = [
    "model=tiny",
    "data=synthetic",
    "trainer=cpu",
    "logger=csv",
    "data.loader.batch_size=4",
    "data.loader.val_batch_size=16",
    "data.splits.max_samples.val=16",
    "data.splits.max_samples.heldout=8",
    "trainer.max_time=null",
    "trainer.max_steps=4",
    "trainer.val_check_interval=4",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "optim.scheduler.warmup_steps=2",
    "stage.module.max_new_tokens=8",
    "stage.module.pictures=2",
]


def compose_train(overrides: list[str], return_hydra_config: bool = False):
    """Compose ``conf/train.yaml`` with ``overrides`` (Hydra's compose API)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="train", overrides=overrides, return_hydra_config=return_hydra_config
        )


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A data dir holding the tiny synthetic corpus and its tokenizer (built once)."""
    from hydra.utils import instantiate

    data_dir = tmp_path_factory.mktemp("data")
    overrides = ["model=tiny", "data=synthetic", f"paths.data_dir={data_dir}", *CORPUS]
    cfg = compose_train(overrides)
    instantiate(cfg.data).prepare_data()
    return data_dir


@pytest.fixture
def make_cfg(tiny_corpus: Path, tmp_path: Path) -> Callable[..., object]:
    """``make_cfg(*overrides, run_dir=None)`` -> the composed train config (DictConfig)."""

    def make(*overrides: str, run_dir: Path | None = None):
        run = Path(run_dir) if run_dir is not None else tmp_path / "run"
        base = [
            *TINY,
            f"paths.data_dir={tiny_corpus}",
            f"paths.log_dir={tmp_path / 'logs'}",
            f"paths.output_dir={run}",
            *CORPUS,
        ]
        return compose_train([*base, *overrides])

    return make


def cli_overrides(tiny_corpus: Path, log_dir: Path) -> list[str]:
    """The same tiny settings as command-line arguments of ``train.py``."""
    args = [*TINY, f"paths.data_dir={tiny_corpus}", f"paths.log_dir={log_dir}", *CORPUS]
    return args


def pytest_collection_modifyitems(config, items):
    """GPU tests run only when the ``-m`` expression names the marker (``-m gpu``): a
    ``-m`` on the command line (``-m "not slow"``) replaces pyproject's ``-m 'not gpu'``."""
    if "gpu" in (config.option.markexpr or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]
