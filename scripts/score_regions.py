"""Score a checkpoint's greedy region descriptions on a split with the SPR / SCST rewards.

    python scripts/score_regions.py ckpt=<file.ckpt> split=val [eval.py keys ...]
        [+semantic=own|clip +clip_model=<name> +clip_weights=<file>] [+max_batches=N]

Every caption row of the split (region captions and referring-expression captions) is
described greedily (``max_new_tokens``) and scored like ``reward=spr`` / ``scst_caption``
score samples: semantic (region crop vs description; the model's own towers unless
``semantic=clip``), localization (the mentioned names grounded back vs the region and its
objects), CIDEr-D (document frequencies of the split's references) and exhaustiveness
(share of reference entities mentioned). Prints one JSON line: mean, 95% normal CI and n
per score.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> dict:
    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from scalar.core.batch import select_rows
    from scalar.rewards import (
        cider_reward,
        entity_mention_reward,
        localization_reward,
        semantic_reward,
    )
    from scalar.rewards.cider import CiderD
    from scalar.rl.region_sources import RegionPrompts
    from scalar.train.evaluate import build

    extra = {a.lstrip("+").split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.startswith("+")}
    plain = [a for a in argv if not a.startswith("+")]
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=[*plain, "tasks=[caption]", "meteor=false"])
    with open_dict(cfg):
        cfg.paths.output_dir = extra.get("out", "/tmp/score_regions")
        cfg.logger = None
    parts = build(cfg, overrides=plain)
    dm, model = parts["datamodule"], parts["module"].model.eval()
    split = parts["splits"][0]
    src = RegionPrompts(tasks=["caption"], semantic=extra.get("semantic", "own"),
                        clip_model=extra.get("clip_model"), clip_weights=extra.get("clip_weights"),
                        image_mean=cfg.model.get("vision", {}).get("mean"),
                        image_std=cfg.model.get("vision", {}).get("std"))  # fmt: skip
    src.setup(dm)
    refs = [
        s.meta.get("references") or [s.target] for s in dm.samples[split] if s.task == "caption"
    ]
    scorer = CiderD(refs)
    scores: dict[str, list[float]] = {"semantic": [], "localization": [], "cider": [],
                                      "exhaustiveness": []}  # fmt: skip
    loaders = dm.val_dataloader()
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    limit = int(extra.get("max_batches", 0))
    for b, batch in enumerate(loader):
        if limit and b >= limit:
            break
        rows = [j for j, s in enumerate(batch["samples"]) if s.task == "caption"]
        if not rows:
            continue
        batch = select_rows(dict(batch), rows) if len(rows) < len(batch["samples"]) else batch
        with torch.no_grad():
            gen = model.generate(batch, do_sample=False, max_new_tokens=int(cfg.max_new_tokens))
            ctx = src.caption_context(model, batch, list(range(len(rows))), gen["texts"])
        scores["localization"] += localization_reward(ctx["pred_boxes_list"],
                                                      ctx["ref_boxes_list"]).tolist()  # fmt: skip
        scores["semantic"] += semantic_reward(ctx["region_embeddings"],
                                              ctx["text_embeddings"]).tolist()  # fmt: skip
        cand_refs = [s.meta.get("references") or [s.target] for s in batch["samples"]]
        scores["cider"] += cider_reward(gen["texts"], cand_refs, scorer).tolist()
        scores["exhaustiveness"] += entity_mention_reward(gen["texts"], ctx["entities"]).tolist()
    out = {"ckpt": parts["ckpt_path"], "split": split, "semantic_source": src.semantic}
    for name, v in scores.items():
        x = np.asarray(v, dtype=np.float64)
        half = 1.96 * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
        out[name] = {"mean": float(x.mean()) if len(x) else float("nan"), "ci95": half, "n": len(x)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
