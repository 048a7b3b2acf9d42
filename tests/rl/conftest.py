"""An align checkpoint (2 steps on the tiny corpus) to start RL runs from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CORPUS, TINY, compose_train


def tiny_overrides(data_dir: Path, log_dir: Path, run_dir: Path) -> list[str]:
    return [*TINY, f"paths.data_dir={data_dir}", f"paths.log_dir={log_dir}",
            f"paths.output_dir={run_dir}", *CORPUS]  # fmt: skip


@pytest.fixture(scope="session")
def align_ckpt(tiny_corpus: Path, tmp_path_factory) -> Path:
    """``last.ckpt`` of a 2-step align run through the real config."""
    from scalar.train.run import train

    root = tmp_path_factory.mktemp("align")
    cfg = compose_train(
        [*tiny_overrides(tiny_corpus, root / "logs", root / "run"), "trainer.max_steps=2",
         "trainer.val_check_interval=2", "validate=false"]
    )  # fmt: skip
    train(cfg)
    path = root / "run" / "checkpoints" / "last.ckpt"
    assert path.is_file()
    return path


RL_FAST = [
    "stage=rl",
    "rl.sampling.group_size=2",
    "rl.sampling.max_new_tokens=4",
    "stage.module.table.every=1",
    "stage.module.generate=false",
]
IMAGES_FAST = [  # image prompts (reward=consistency, the default)
    "rl.prompts.roles=[describe,format,gdg,ground]",
    "rl.prompts.batch_size=1",
    "rl.prompts.budgets.ground_tokens=4",
]
