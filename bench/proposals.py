"""Proposal quality of the RL stage: the model's own proposals (its confident groundings
of the vocabulary) against image processing (connected components), measured as the mean
best IoU of every annotated object of a split with the proposals of its image and the
share found at IoU >= 0.5. Writes a JSON (default bench/results/proposals.json).

    python bench/proposals.py --ckpt RUN/checkpoints/last.ckpt [--splits val heldout]
        [--vocabulary words.txt] [--max-images 200] [--out FILE] -- OVERRIDES...

``OVERRIDES`` compose ``conf/train.yaml`` as the checkpoint's run did (model=..., data=...,
paths.data_dir=..., data.synthetic.*); the annotations are read only to score.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from scalar.rl.proposal_quality import (  # noqa: E402
    best_model_proposal_ious,
    best_proposal_ious,
    summary,
)
from scalar.rl.vocabulary import stage_vocabulary  # noqa: E402
from scalar.train.checkpoint import load_weights  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="align (or RL) checkpoint")
    ap.add_argument("--splits", nargs="+", default=["val", "heldout"])
    ap.add_argument("--vocabulary", default=None, help="words file added to the train split's")
    ap.add_argument("--max-images", type=int, default=200, help="images per split (first N)")
    ap.add_argument("--max-proposals", type=int, default=8)
    ap.add_argument("--min-confidence", type=float, default=0.0)
    ap.add_argument("--out", default=str(ROOT / "bench/results/proposals.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(args.overrides))
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model = instantiate(cfg.model).eval()
    load_weights(model, args.ckpt, key="--ckpt")
    corpora = dm.read_corpora()
    words = stage_vocabulary(corpora, "train", args.vocabulary)
    out = {"ckpt": args.ckpt, "words": words, "splits": {}}
    for split in args.splits:
        scenes = corpora[split].scenes[: args.max_images]
        t0 = time.perf_counter()
        comp = summary(best_proposal_ious(scenes, max_proposals=args.max_proposals))
        t1 = time.perf_counter()
        with torch.no_grad():
            mine = summary(best_model_proposal_ious(
                model, dm, scenes, words, args.max_proposals, args.min_confidence))  # fmt: skip
        t2 = time.perf_counter()
        out["splits"][split] = {
            "images": len(scenes),
            "components": {**comp, "seconds": round(t1 - t0, 2)},
            "model": {**mine, "seconds": round(t2 - t1, 2)},
        }
        print(split, json.dumps(out["splits"][split]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
