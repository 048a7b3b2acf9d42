"""CIDEr-D speed: pycocoevalcap's ``Cider`` vs ``scalar.rewards.cider.CiderD``.

64 candidates x 5 references of real Visual Genome region descriptions (the sample in
tests/realdata; random words if it is missing), in two lengths: the phrases as they are
(~5 words), two phrases joined by "and" (~12 words, COCO-caption length) and three
(~18 words; the issue's pycocoevalcap reference of about 112 ms is longer still). Runs are
interleaved (one of each variant per round) so that load on a shared machine hits every
variant alike; medians are reported. Writes bench/results/cider.json.

What each timed call costs (the issue's fast path: "document frequencies precomputed over
the training references, reference vectors cached"):

* ``pycocoevalcap``: ``Cider().compute_score`` on pre-tokenised text (no Java tokenizer).
* ``ours_train_df_raw_text`` (the SCST reward path): ``CiderD(corpus)`` built once before
  timing, so corpus document frequencies and each reference set's n-gram ids, tf and
  tf-idf norms are cached (the first, untimed call caches the 64 sets). Timed: tokenising
  the 64 raw candidates, counting and looking up their n-grams, the clipped dot products
  with their references and the length penalties; nothing about candidates is cached.
* ``ours_batch_df_cached``: document frequencies of each call's references, as
  pycocoevalcap; reference n-gram counts cached, idf and reference norms recomputed.
* ``ours_batch_df_cold``: a fresh scorer per call (nothing cached).

    python bench/cider.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pycocoevalcap.cider.cider import Cider  # noqa: E402

from scalar.rewards.cider import CiderD, simple_tokenize  # noqa: E402

VG = ROOT / "tests/realdata/visual_genome/v1.0/region_descriptions.json"


def phrases() -> list[str]:
    if VG.exists():
        return [r["phrase"] for im in json.loads(VG.read_text()) for r in im["regions"]]
    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)]
    return [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(1300)]


def run(raw: list[str], n_c: int, n_r: int, rounds: int) -> dict:
    tok = [" ".join(simple_tokenize(p)) for p in raw]  # pycocoevalcap gets tokenised text
    group = n_r + 1
    if len(raw) < group * n_c:
        raise SystemExit(f"need {group * n_c} phrases, have {len(raw)}")
    cands_raw = [raw[i * group + n_r] for i in range(n_c)]
    refs_tok = [tok[i * group : i * group + n_r] for i in range(n_c)]
    cands_tok = [tok[i * group + n_r] for i in range(n_c)]
    gts = {i: refs_tok[i] for i in range(n_c)}
    res = {i: [cands_tok[i]] for i in range(n_c)}
    corpus = [raw[i * group : i * group + n_r] for i in range(len(raw) // group)]

    batch_df = CiderD(tokenize=str.split)  # df of each call's refs, as pycocoevalcap
    train_df = CiderD(corpus)  # df of the training corpus, refs by id (the SCST path)
    ids = list(range(n_c))
    expect = Cider().compute_score(gts, res)[1]
    err = float(np.abs(batch_df.score(cands_tok, refs_tok) - expect).max())
    train_df.score(cands_raw, ids)

    variants = {
        "pycocoevalcap": lambda: Cider().compute_score(gts, res),
        "ours_batch_df_cached": lambda: batch_df.score(cands_tok, refs_tok),
        "ours_batch_df_cold": lambda: CiderD(tokenize=str.split).score(cands_tok, refs_tok),
        "ours_train_df_raw_text": lambda: train_df.score(cands_raw, ids),
    }
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    base = med["pycocoevalcap"]
    words = float(np.mean([len(t.split()) for t in tok]))
    print(f"-- {n_c} candidates x {n_r} refs, {words:.1f} words per sentence")
    for k, v in med.items():
        print(f"{k:26s} {v:8.3f} ms  x{base / v:6.1f}")
    print(f"max |ours - pycocoevalcap| = {err:.2e}")
    return {
        "words_per_sentence": words,
        "max_abs_diff_vs_pycocoevalcap": err,
        "median_ms": med,
        "speedup": {k: base / v for k, v in med.items() if k != "pycocoevalcap"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--refs", type=int, default=5)
    args = ap.parse_args()
    short = phrases()
    joined = [f"{a} and {b}" for a, b in zip(short[0::2], short[1::2])]
    three = [f"{a}, {b} and {c}" for a, b, c in zip(short[0::3], short[1::3], short[2::3])]
    out = {
        "setup": f"{args.candidates} candidates x {args.refs} refs, {args.rounds} rounds, "
        "medians; Visual Genome region descriptions",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.2f}, python {platform.python_version()}, "
        f"numpy {np.__version__}",
        "vg_phrases": run(short, args.candidates, args.refs, args.rounds),
        "two_phrases_joined": run(joined, args.candidates, args.refs, args.rounds),
        "three_phrases_joined": run(three, args.candidates, args.refs, args.rounds),
    }
    path = ROOT / "bench/results/cider.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
