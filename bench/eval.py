"""REC evaluation throughput: expressions/s of batched greedy generation with a KV cache.

The tiny model (random init, or ``--ckpt``) answers REC prompts of the synthetic val
split (``data/synthetic_flat``, or a small corpus built in a temporary folder when it is
missing), pre-collated so that only the model is timed (image encoding, prefix,
generation and the spatial decoder). A random model never emits ``</s>`` early, so every
row runs all ``--max-new-tokens`` steps (a trained one answers ``<box></s>``: 2 tokens).
Batch sizes and cache on/off are interleaved per round so that load on a shared machine
hits every variant alike; medians are reported. Writes bench/results/eval.json (one
entry for the random model, one for the last ``--ckpt`` measured).

    python bench/eval.py [--ckpt path] [--samples 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SMALL = ["data.synthetic.n_train=20", "data.synthetic.n_val=20", "data.synthetic.n_test=2",
         "data.synthetic.n_heldout=2", "data.synthetic.n_unlabeled=1"]  # fmt: skip


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="eval", overrides=overrides)


def rec_batches(args) -> tuple[object, list[dict], str]:
    """The model and REC batches (one list per batch size) of the synthetic val split."""
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from scalar.train.checkpoint import load_checkpoint_file, load_weights
    from scalar.train.evaluate import data_config, model_config

    data_dir = ROOT / "data"
    extra: list[str] = []
    if not (data_dir / "synthetic_flat" / "manifest.json").is_file():  # the default world
        data_dir = Path(tempfile.mkdtemp(prefix="scalar-bench-"))
        extra = SMALL
    cfg = compose(["ckpt=none", f"paths.data_dir={data_dir}", "paths.output_dir=.",
                   "tasks=[rec]", "split=val", *extra])  # fmt: skip
    source = "random init"
    if args.ckpt:
        ckpt = load_checkpoint_file(args.ckpt)
        with open_dict(cfg):
            cfg.model = model_config(cfg, (ckpt.get("scalar") or {}).get("config") or {}, [])
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    if args.ckpt:
        load_weights(model, ckpt, args.ckpt)
        source = f"checkpoint {args.ckpt}"
    model.eval()
    dm = instantiate(data_config(cfg, ["val"]), tokenizer=model.tokenizer)
    dm.prepare_data()
    dm.setup("validate")
    samples = [s for s in dm.samples["val"] if s.task == "rec"][: args.samples]
    if len(samples) < args.samples:
        raise SystemExit(f"only {len(samples)} REC samples in the val split")
    ds = dm._dataset("val")
    ds.samples = samples
    items = [ds[i] for i in range(len(samples))]
    batches = {
        bs: [dm.collator(items[i : i + bs]) for i in range(0, len(items), bs)]
        for bs in args.batch_sizes
    }
    return model, batches, source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="checkpoint (default: random tiny model)")
    ap.add_argument("--samples", type=int, default=128, help="REC expressions per measurement")
    ap.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 8, 32, 64])  # fmt: skip
    ap.add_argument("--max-new-tokens", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    model, batches, source = rec_batches(args)
    variants = [(bs, cache) for bs in args.batch_sizes for cache in (True, False)]
    times: dict = {v: [] for v in variants}
    tokens: dict = {}
    with torch.inference_mode():
        model.generate(batches[args.batch_sizes[0]][0], max_new_tokens=2)  # warm-up
        for _ in range(args.rounds):
            for bs, cache in variants:
                t = time.perf_counter()
                n_tok = 0
                for b in batches[bs]:
                    out = model.generate(b, max_new_tokens=args.max_new_tokens, use_cache=cache)
                    n_tok += int(out["lengths"].sum())
                times[(bs, cache)].append(time.perf_counter() - t)
                tokens[(bs, cache)] = n_tok
    results = {}
    for bs, cache in variants:
        med = float(np.median(times[(bs, cache)]))
        key = f"batch{bs}_{'kv_cache' if cache else 'no_cache'}"
        results[key] = {"expressions_per_s": args.samples / med, "seconds": med,
                        "generated_tokens": tokens[(bs, cache)]}  # fmt: skip
        print(f"{key:22s} {args.samples / med:8.1f} expressions/s  ({med:.2f} s)")
    run = {
        "setup": f"{args.samples} REC expressions of the synthetic val split, tiny model "
        f"({source}), greedy, max_new_tokens={args.max_new_tokens}, {args.rounds} rounds, "
        "medians; model time only (batches pre-collated)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
        f"python {platform.python_version()}, torch {torch.__version__}",
        "results": results,
    }
    path = ROOT / "bench/results/eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    out = json.loads(path.read_text()) if path.is_file() else {}
    out = {k: v for k, v in out.items() if k in ("random_init", "checkpoint")}
    out["checkpoint" if args.ckpt else "random_init"] = run  # one entry per model source
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
