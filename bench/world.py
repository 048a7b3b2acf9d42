"""The synthetic world per difficulty preset: build time, corpus size on disk, and how well
the RL stage's class-agnostic proposals (connected components unlike the border colour)
find the val objects -- the mean best IoU with each object's true box and the share of
objects found at IoU >= 0.5. Writes bench/results/world.json and, with ``--picture``, one
val scene per preset side by side (docs/pictures/world_presets.png).

    python bench/world.py [--presets flat easy default hard] [--small] [--workers 1]
                          [--root DIR] [--picture docs/pictures/world_presets.png]

Sizes: the default corpus of ``SynthConfig`` (4000/400/400/400 + 1000 unlabeled) unless
``--small`` (200/100/50/50 + 50). ``--workers`` renders in that many processes (the
build time is wall seconds; CPU seconds of the main process are reported beside it).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from scalar.core.pictures import font  # noqa: E402
from scalar.data.readers.coco import read_coco  # noqa: E402
from scalar.data.synth import build_synthetic  # noqa: E402
from scalar.data.synth.presets import DIFFICULTIES  # noqa: E402
from scalar.rl.proposal_quality import best_proposal_ious, summary  # noqa: E402

SMALL = dict(n_train=200, n_val=100, n_test=50, n_heldout=50, n_unlabeled=50)
TILE = 384  # picture side of one scene
PICTURE_FROM = 12  # the picture shows the fullest of the first val scenes of each preset


def measure(root: Path, difficulty: str, sizes: dict, workers: int) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    m = build_synthetic(root, workers=workers, difficulty=difficulty, **sizes)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    val = read_coco(root / "coco/annotations/instances_val.json", root / "images", "val")
    if val.skips:
        raise RuntimeError(f"{difficulty}: the reader skipped rows: {val.skips.report()}")
    q = summary(best_proposal_ious(val.scenes))
    disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    counts = m["counts"]
    return {
        "build_wall_s": round(wall, 2),
        "build_main_cpu_s": round(cpu, 2),
        "workers": workers,
        "images": sum(c["images"] for c in counts.values()),
        "objects": sum(c["objects"] for c in counts.values()),
        "occluded_objects": sum(c.get("occluded_objects", 0) for c in counts.values()),
        "disk_mb": round(disk / 2**20, 1),
        "val_proposals": q,
    }


def _scene(root: Path) -> tuple[Path, list[dict]]:
    """The val image with the most objects among the first ``PICTURE_FROM`` and its rows."""
    coco = json.loads((root / "coco/annotations/instances_val.json").read_text())
    rows: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        rows.setdefault(a["image_id"], []).append(a)
    images = coco["images"][:PICTURE_FROM]
    best = max(images, key=lambda im: (len(rows.get(im["id"], [])), -im["id"]))
    return root / "images" / best["file_name"], rows.get(best["id"], [])


def picture(roots: dict[str, Path], results: dict, out: Path) -> None:
    """One val scene per preset, upscaled: as rendered (top) and with its boxes (below:
    visible box green, amodal box yellow when part is hidden), figures under each."""
    pad, text_h, scale = 8, 44, TILE
    width = len(roots) * (TILE + pad) + pad
    canvas = Image.new("RGB", (width, 2 * TILE + text_h + 3 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (name, root) in enumerate(roots.items()):
        path, anns = _scene(root)
        with Image.open(path) as im:
            f = scale / im.width
            tile = im.convert("RGB").resize((TILE, TILE), Image.NEAREST)
        x = pad + k * (TILE + pad)
        canvas.paste(tile, (x, pad))
        boxed = tile.copy()
        d = ImageDraw.Draw(boxed)
        for a in anns:
            if a.get("visible_fraction", 1) < 1:
                bx, by, bw, bh = a["amodal_bbox"]
                d.rectangle([bx * f, by * f, (bx + bw) * f - 1, (by + bh) * f - 1],
                            outline=(250, 220, 0), width=2)  # fmt: skip
            bx, by, bw, bh = a["bbox"]
            d.rectangle([bx * f, by * f, (bx + bw) * f - 1, (by + bh) * f - 1],
                        outline=(20, 230, 60), width=3)  # fmt: skip
        canvas.paste(boxed, (x, TILE + 2 * pad))
        q = results[name]["val_proposals"]
        y = 2 * TILE + 2 * pad + 4
        draw.text((x, y), f"difficulty={name}", fill=(0, 0, 0), font=font(18))
        line = f"proposal IoU {q['mean_best_iou']:.2f} mean, {q['share_iou_ge_0_5']:.0%} >= 0.5"
        draw.text((x, y + 20), line, fill=(60, 60, 60), font=font(15))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=list(DIFFICULTIES), choices=DIFFICULTIES)
    p.add_argument("--small", action="store_true", help="a small corpus per preset")
    p.add_argument("--workers", type=int, default=1, help="render processes")
    p.add_argument("--root", help="keep the corpora here (default: a temporary folder)")
    p.add_argument("--picture", help="write the side-by-side picture here")
    p.add_argument("--out", default=str(ROOT / "bench/results/world.json"))
    a = p.parse_args()
    sizes = SMALL if a.small else {}
    base = Path(a.root) if a.root else Path(tempfile.mkdtemp(prefix="world_"))
    roots = {name: base / name for name in a.presets}
    results = {}
    try:
        for name, root in roots.items():
            if root.exists():
                shutil.rmtree(root)
            results[name] = measure(root, name, sizes, a.workers)
            print(name, json.dumps(results[name]), flush=True)
        if a.picture:
            picture(roots, results, Path(a.picture))
    finally:
        if not a.root:
            shutil.rmtree(base, ignore_errors=True)
    report = {
        "what": "build time and class-agnostic proposal quality per difficulty preset",
        "sizes": sizes or "SynthConfig defaults",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "presets": results,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
