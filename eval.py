"""Evaluate a checkpoint: ``python eval.py ckpt=<file|run folder|last> [key=value ...]`` (Hydra).

One fixed prompt per task, one greedy decode per sample, full splits; writes
results.json, results.md, predictions/<task>_<split>.jsonl and pictures/ to the run
folder (logs/eval/runs/<time>). Examples::

    python eval.py ckpt=last tasks=[rec,roc] data=synthetic split=val
    python eval.py ckpt=run.ckpt data=refcoco splits=[val,testA,testB] tasks=[rec]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # avoids a 5x slowdown on shared cores

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

CONF = Path(__file__).resolve().parent / "conf"
MISSING_CKPT = "ckpt is required: ckpt=<file.ckpt>, ckpt=<training run folder> or ckpt=last"


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(cfg, "ckpt"):  # before the heavy imports: a quick answer
        print(f"error: {MISSING_CKPT}", file=sys.stderr)
        raise SystemExit(2)
    from scalar.train.errors import run_guarded
    from scalar.train.evaluate import evaluate

    run_guarded(evaluate, cfg)  # user mistakes: one line, exit 2 (usage) or 1 (data)


def main() -> None:
    from scalar.train.cli import guard

    os.environ.setdefault("PROJECT_ROOT", str(CONF.parent))
    guard(sys.argv[1:], CONF, "eval")
    _main()


if __name__ == "__main__":
    main()
