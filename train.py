"""Train a SCALAR stage: ``python train.py [group=option ...] [key=value ...]`` (Hydra).

Examples::

    python train.py                                   # the embedded CPU job (synthetic corpus)
    python train.py stage=align model=vicuna7b data=refcoco trainer=fsdp
    python train.py -m loss.nu=1,2,5 optim.lr=1e-4,3e-4   # multirun
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
    from scalar.stages.align import NonFiniteLossError
    from scalar.train.checkpoint import UserError
    from scalar.train.run import train

    try:
        return train(cfg)
    except (UserError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def main() -> None:
    from scalar.train.cli import guard

    os.environ.setdefault("PROJECT_ROOT", str(CONF.parent))
    guard(sys.argv[1:], CONF)
    _main()


if __name__ == "__main__":
    main()
