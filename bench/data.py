"""Data layer at Visual Genome scale: read, validate, concept chains, and loader throughput.

1. generate (not timed against the target): ``bench/vg_synth.py`` writes a VG v1.2 layout
   of ``100k * scale`` images (35 objects, 20 relationships, 50 regions each; at full
   scale 3.5M objects, 2M relationships, 5M regions, ~2 GB of JSON), annotations only;
2. read: ``read_visual_genome(root, check_images=False)``;
3. validate: what ``python -m scalar.data validate data=vg`` does without Hydra: read once,
   ``select_split`` train/val/test (hash split), counts and skips by reason;
4. chain: ``build_chain`` over the objects of the first scenes, ``--chain-objects`` of
   them (a documented sample; the time for all objects is extrapolated per object), in
   the validate process on the corpus it read;
5. loader: ``SceneDataModule`` of ``conf/data/synthetic.yaml`` on ``data/synthetic_flat`` (a
   small corpus is built in the tmp dir when it is missing): setup time, then samples/s
   of ``train_dataloader`` with decoded images, collated batches.

Each phase runs in its own process (peak RSS is ``ru_maxrss`` of that process; wall and
CPU seconds are both reported: on a shared machine CPU seconds are the stable number).
The reader reads region descriptions in a helper process: its CPU seconds and peak RSS
are reported apart (``children_*``) and the memory figure of the target adds them.
Target: read and validate under 60 s and 4 GB on 2 cores. Writes bench/results/data.json.

``--join`` runs the corpus join instead (issue 20): ``bench/join_synth.py`` writes
RefCOCO + COCO + LVIS + VG annotations of the same images (120k images, 1.3M LVIS boxes,
5M VG regions at scale 1), then every split of ``conf/data/joint.yaml`` is read and joined
in one process and the referents' chains are built. Target: <= 120 s and <= 6 GB on 2
cores. Writes bench/results/data_join.json.

    python bench/data.py [--scale 1.0] [--root DIR [--reuse]] [--chain-objects 100000]
                         [--batches 40] [--join]

``--reuse`` with ``--root`` keeps a set generated there before (the generate phase is
then skipped); without ``--root`` the set lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_S, TARGET_GB = 60.0, 4.0
JOIN_TARGET_S, JOIN_TARGET_GB = 120.0, 6.0  # --join (issue 20)


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> dict:
    wall, cpu = _clock()
    return {"wall_s": round(wall - t0[0], 2), "cpu_s": round(cpu - t0[1], 2)}


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _children() -> dict:
    """CPU seconds and peak RSS of the helper processes the phase started (the VG reader
    reads region descriptions in one): CPU counts once they have ended."""
    t = os.times()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"children_cpu_s": round(t.children_user + t.children_system, 2),
            "children_peak_rss_mb": round(peak, 1)}  # fmt: skip


# ---------------------------------------------------------------- phases (child processes)


FILES = ("image_data", "objects", "attributes", "relationships", "region_descriptions")


def phase_generate(a) -> dict:
    from bench.vg_synth import generate

    root = Path(a.root)
    if a.reuse and all((root / f"{f}.json").is_file() for f in FILES):
        size = sum((root / f"{f}.json").stat().st_size for f in FILES)
        return {"wall_s": 0.0, "cpu_s": 0.0, "reused": str(root), "json_mb": round(size / 2**20, 1)}
    t0 = _clock()
    counts = generate(root, a.scale, seed=0)
    size = sum(p.stat().st_size for p in root.glob("*.json"))
    return {**_since(t0), "written": counts, "json_mb": round(size / 2**20, 1)}


def phase_read(a) -> dict:
    from scalar.data.readers.vg import read_visual_genome

    t0 = _clock()
    corpus = read_visual_genome(a.root, check_images=False)
    return {**_since(t0), **_children(), "counts": corpus.counts()}


def phase_validate(a) -> dict:
    from functools import partial

    from scalar.data.merge import clear_cache, select_split
    from scalar.data.readers.vg import read_visual_genome

    t0 = _clock()
    reader = partial(read_visual_genome, root=a.root, check_images=False)
    corpora = {s: select_split(reader, s) for s in ("train", "val", "test")}
    splits = {s: c.counts() for s, c in corpora.items()}
    clear_cache()
    out = {**_since(t0), **_children(), "splits": splits}
    out["chain"] = chain(a, [s for c in corpora.values() for s in c.scenes])
    out["chain"]["peak_rss_mb"] = _peak_mb()  # of read + validate + chain: the same process
    return out


def chain(a, scenes) -> dict:
    import random

    from scalar.data.chains import build_chain

    total = sum(len(s.objects) for s in scenes)
    rng = random.Random(0)
    t0, n, levels = _clock(), 0, 0
    for scene in scenes:
        for obj in scene.objects:
            levels += len(build_chain(scene, obj, rng))
            n += 1
        if n >= a.chain_objects:
            break
    out = _since(t0)
    per = out["cpu_s"] / max(n, 1)
    return {**out, "objects": n, "levels": levels, "all_objects": total,
            "us_per_object_cpu": round(per * 1e6, 1),
            "all_objects_cpu_s_extrapolated": round(per * total, 1)}  # fmt: skip


def phase_loader(a) -> dict:
    from hydra.utils import instantiate

    from scalar.data.__main__ import compose

    root = Path(a.synthetic)
    built = False
    if not (root / "manifest.json").is_file():
        root = Path(a.root).parent / "synthetic_small"
        sizes = {"n_train": 300, "n_val": 40, "n_test": 40, "n_heldout": 40, "n_unlabeled": 20}
        args = ["synth", f"out={root}", *(f"data.synthetic.{k}={v}" for k, v in sizes.items())]
        subprocess.run([sys.executable, "-m", "scalar.data", *args], cwd=ROOT, check=True)
        built = True
    cfg = compose(["data=synthetic", f"data.root={root}", f"data.loader.num_workers={a.workers}"])
    dm = instantiate(cfg.data)
    t0 = _clock()
    dm.setup("fit")
    setup = _since(t0)
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # first batch: worker start-up
    t0, n = _clock(), 0
    for _ in range(a.batches):
        try:
            batch = next(it)
        except StopIteration:
            break
        n += int(batch["images"].shape[0])
    run = _since(t0)
    return {"corpus": str(root), "built_small_corpus": built, "setup": setup,
            "train_samples": len(dm.samples["train"]), "batch_size": dm.batch_size,
            "num_workers": a.workers, "image_size": dm.image_size, "samples": n, **run,
            "samples_per_s": round(n / max(run["wall_s"], 1e-9), 1)}  # fmt: skip


PHASES = {"generate": phase_generate, "read": phase_read, "validate": phase_validate,
          "loader": phase_loader}  # fmt: skip
JOIN_PHASES = ("join_generate", "join")  # --join: bench/join_synth.py


def _join_phase(name: str):
    import bench.join_synth as js

    return lambda a: getattr(js, f"phase_{name}")(a, _clock, _since)


def child(a) -> None:
    if a.phase == "loader":
        import torch

        torch.set_num_threads(2)
    out = (_join_phase(a.phase) if a.phase in JOIN_PHASES else PHASES[a.phase])(a)
    out["peak_rss_mb"] = _peak_mb()
    print("RESULT " + json.dumps(out))


# ---------------------------------------------------------------- driver


def run_phase(name: str, a) -> dict:
    args = [sys.executable, __file__, "--phase", name, "--root", str(a.root), "--scale",
            str(a.scale), "--chain-objects", str(a.chain_objects), "--batches",
            str(a.batches), "--workers", str(a.workers), "--synthetic", str(a.synthetic),
            *(["--reuse"] if a.reuse else [])]  # fmt: skip
    print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"phase {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def table(res: dict) -> str:
    rows = [("phase", "wall s", "cpu s", "peak RSS MB", "notes")]
    g = res["generate"]
    rows.append(("generate", g["wall_s"], g["cpu_s"], g["peak_rss_mb"],
                 f"{g['json_mb']} MB JSON{' (reused)' if g.get('reused') else ''}, "
                 "not in the target"))  # fmt: skip
    r = res["read"]
    c = r["counts"]
    note = (f"{c['images']} img, {c['objects']} obj, {c['relations']} rel, {c['regions']} reg; "
            f"helper {r['children_cpu_s']} cpu s, {r['children_peak_rss_mb']} MB")  # fmt: skip
    rows.append(("read", r["wall_s"], r["cpu_s"], r["peak_rss_mb"], note))
    v = res["validate"]
    note = ", ".join(f"{k} {s['images']}" for k, s in v["splits"].items())
    rows.append(("validate", v["wall_s"], v["cpu_s"], v["peak_rss_mb"], note))
    ch = res["validate"]["chain"]
    note = (f"{ch['objects']} obj, {ch['us_per_object_cpu']} us/obj; all "
            f"{ch['all_objects']}: ~{ch['all_objects_cpu_s_extrapolated']} cpu s")  # fmt: skip
    rows.append(("chain", ch["wall_s"], ch["cpu_s"], ch["peak_rss_mb"], note))
    lo = res["loader"]
    note = (f"setup {lo['setup']['wall_s']} s; {lo['samples_per_s']} samples/s "
            f"(batch {lo['batch_size']}, workers {lo['num_workers']})")  # fmt: skip
    rows.append(("loader", lo["wall_s"], lo["cpu_s"], lo["peak_rss_mb"], note))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="1.0 = 100k images, 5M regions")
    p.add_argument("--root", type=Path, default=None, help="generated VG folder (default: tmp)")
    p.add_argument("--chain-objects", type=int, default=100_000)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the loader phase")
    p.add_argument("--synthetic", type=Path, default=ROOT / "data" / "synthetic_flat")
    p.add_argument("--reuse", action="store_true", help="keep a set already under --root")
    p.add_argument("--join", action="store_true", help="the corpus join (bench/join_synth.py)")
    p.add_argument("--phase", choices=sorted(PHASES) + list(JOIN_PHASES), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "data.json")
    a = p.parse_args()
    if a.phase:
        return child(a)
    if a.join:
        return main_join(a)
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        if a.root is None:
            a.root = Path(tmp) / "vg"
        res = {name: run_phase(name, a) for name in PHASES}
    budget = max(res["read"]["wall_s"], res["validate"]["wall_s"])
    peak = max(res[k]["peak_rss_mb"] + res[k]["children_peak_rss_mb"]
               for k in ("read", "validate")) / 1024  # fmt: skip
    res["meta"] = {
        "scale": a.scale, "cpus": os.cpu_count(), "python": platform.python_version(),
        "machine": platform.machine(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "target": f"read/validate < {TARGET_S} s and < {TARGET_GB} GB on 2 cores",
        "read_validate_wall_s": budget, "read_validate_cpu_s": max(
            res["read"]["cpu_s"], res["validate"]["cpu_s"]),
        "read_validate_cpu_s_with_helpers": round(max(
            res[k]["cpu_s"] + res[k]["children_cpu_s"] for k in ("read", "validate")), 2),
        "read_validate_peak_gb": round(peak, 2),
        "within_target_wall": budget < TARGET_S and peak < TARGET_GB,
    }  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(table(res))
    m = res["meta"]
    print(f"read/validate: {m['read_validate_wall_s']} s wall, {m['read_validate_cpu_s']} s cpu, "
          f"{m['read_validate_peak_gb']} GB peak (load avg {m['load_avg_1m_at_end']} on "
          f"{m['cpus']} cpus); wrote {a.out}")  # fmt: skip


def main_join(a) -> None:
    """``--join``: generate the four corpora, then join them (see bench/join_synth.py)."""
    with tempfile.TemporaryDirectory(prefix="bench_join_") as tmp:
        if a.root is None:
            a.root = Path(tmp) / "joint"
        res = {name: run_phase(name, a) for name in JOIN_PHASES}
    j = res["join"]
    peak = (j["peak_rss_mb"] + j["children_peak_rss_mb"]) / 1024
    res["meta"] = {
        "scale": a.scale, "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "target": f"join (read + match, every split) <= {JOIN_TARGET_S} s and <= "
                  f"{JOIN_TARGET_GB} GB on 2 cores",
        "join_wall_s": j["wall_s"], "join_cpu_s_with_helpers": round(
            j["cpu_s"] + j["children_cpu_s"], 2), "join_peak_gb": round(peak, 2),
        "within_target": j["wall_s"] <= JOIN_TARGET_S and peak <= JOIN_TARGET_GB,
    }  # fmt: skip
    out = a.out if a.out.name != "data.json" else a.out.with_name("data_join.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    m = res["meta"]
    print(json.dumps({k: v for k, v in res["join"].items() if k != "splits"}))
    print(
        f"join: {m['join_wall_s']} s wall, {m['join_cpu_s_with_helpers']} cpu s with helpers, "
        f"{m['join_peak_gb']} GB peak (load avg {m['load_avg_1m_at_end']}); wrote {out}"
    )


if __name__ == "__main__":
    main()
