"""Train a SCALAR stage: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

Examples::

    python train.py                                   # the embedded CPU job (synthetic corpus)
    python train.py stage=align model=vicuna7b data=refcoco trainer=fsdp
    python train.py -m loss.contrastive.nu=1,2,5 optim.lr=1e-4,3e-4   # multirun
    python train.py ckpt_path=last                    # resume the latest run of this task
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # avoids a 5x slowdown on shared cores

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

CONF = Path(__file__).resolve().parent / "conf"


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    from scalar.train.errors import run_guarded
    from scalar.train.run import train

    # user mistakes: one line, exit 2 (usage) or 1 (data); SIGTERM / SIGINT: 143 / 130
    return run_guarded(train, cfg)


def main() -> None:
    from scalar.train.cli import guard

    os.environ.setdefault("PROJECT_ROOT", str(CONF.parent))
    guard(sys.argv[1:], CONF)
    _main()


if __name__ == "__main__":
    main()
