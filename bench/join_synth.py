"""RefCOCO + COCO + LVIS + Visual Genome annotations of the same synthetic images, at the
size of the real corpora, for the corpus-join benchmark (``bench/data.py --join``).

Full scale (``scale=1``): 120k COCO images (7 objects each: 840k boxes; 95% in
instances_train2017.json, the rest in val2017), LVIS v1 over the same images (the 7 COCO
objects with jittered boxes plus 4 more: 1.32M boxes, 100k images in lvis_v1_train.json,
20k in val), RefCOCO (unc) over the first 20k images (2.5 refs of 3 sentences per image)
and Visual Genome from ``bench/vg_synth.py`` (100k images, 3.5M objects, 2M relations,
5M regions) whose first 51k images carry a ``coco_id``, are stored at 0.78 of the COCO
size and list the 7 COCO objects (scaled, jittered) first. Annotations only, no images.

    python bench/join_synth.py <out_dir> [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COCO_IMAGES, LVIS_TRAIN, REF_IMAGES, VG_LINKED = 120_000, 100_000, 20_000, 51_000
PER_IMAGE, LVIS_EXTRA, VG_SCALE, JITTER = 7, 4, 0.78, 0.04
N_COCO_CATS, N_LVIS_CATS = 80, 1203
SPLITS = ("train", "train", "train", "train", "train", "train", "val", "testA", "testB")


def _jitter(rng, x, y, w, h, s=1.0):
    d = JITTER
    return (max(0, int((x + rng.gauss(0, d * w)) * s)), max(0, int((y + rng.gauss(0, d * h)) * s)),
            max(1, int(w * s * (1 + rng.gauss(0, d)))), max(1, int(h * s * (1 + rng.gauss(0, d)))))  # fmt: skip


def _write_json_rows(path: Path, head: str, images: list[str], anns: list[str], tail: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + '"images": [' + ", ".join(images) + '], "annotations": [')
        f.write(", ".join(anns) + "], " + tail + "}")


def generate(out: Path, scale: float = 1.0, seed: int = 0) -> dict:
    from bench.vg_synth import generate as generate_vg

    rng = random.Random(seed)
    n = max(20, round(COCO_IMAGES * scale))
    n_lvis_train, n_ref = round(LVIS_TRAIN * scale), max(4, round(REF_IMAGES * scale))
    n_linked = round(VG_LINKED * scale)
    sizes, objects = {}, {}
    ann_id = 0
    coco_imgs = {"train": [], "val": []}
    coco_anns = {"train": [], "val": []}
    lvis_imgs = {"train": [], "val": []}
    lvis_anns = {"train": [], "val": []}
    ref_images, ref_anns, refs = [], [], []
    lvis_id, ref_id, sent_id = 0, 0, 0
    for i in range(1, n + 1):
        W, H = rng.choice((640, 500, 480)), rng.choice((480, 427, 375))
        sizes[i] = (W, H)
        part = "train" if i <= 0.95 * n else "val"
        img = f'{{"id": {i}, "width": {W}, "height": {H}, "file_name": "{i:012d}.jpg"}}'
        coco_imgs[part].append(img)
        objs = []
        for _ in range(PER_IMAGE):
            ann_id += 1
            w, h = 8 + int(rng.random() * (W / 2)), 8 + int(rng.random() * (H / 2))
            x, y = int(rng.random() * (W - w)), int(rng.random() * (H - h))
            c = 1 + int(rng.random() * N_COCO_CATS)
            objs.append((ann_id, c, x, y, w, h))
        objects[i] = objs
        rows = [f'{{"id": {a}, "image_id": {i}, "bbox": [{x}, {y}, {w}, {h}], "category_id": {c}, '
                f'"area": {w * h}, "iscrowd": 0}}' for a, c, x, y, w, h in objs]  # fmt: skip
        coco_anns[part] += rows
        lpart = "train" if i <= n_lvis_train else "val"
        lvis_imgs[lpart].append(
            f'{{"id": {i}, "width": {W}, "height": {H}, "coco_url": '
            f'"http://images.cocodataset.org/train2017/{i:012d}.jpg", "neg_category_ids": [], '
            '"not_exhaustive_category_ids": []}'
        )
        boxes = [(c, *_jitter(rng, x, y, w, h)) for _, c, x, y, w, h in objs]
        for _ in range(LVIS_EXTRA):
            w, h = 4 + int(rng.random() * W / 4), 4 + int(rng.random() * H / 4)
            boxes.append((N_COCO_CATS + 1 + int(rng.random() * (N_LVIS_CATS - N_COCO_CATS)),
                          int(rng.random() * (W - w)), int(rng.random() * (H - h)), w, h))  # fmt: skip
        for c, x, y, w, h in boxes:
            lvis_id += 1
            lvis_anns[lpart].append(
                f'{{"id": {lvis_id}, "image_id": {i}, "bbox": [{x}, {y}, {w}, {h}], '
                f'"category_id": {c}, "area": {w * h}}}'
            )
        if i <= n_ref:
            ref_images.append(img)
            ref_anns += rows
            split = SPLITS[i % len(SPLITS)]
            for a, c, *_ in objs[: 2 + (i % 2)]:
                ref_id += 1
                sents = [{"sent": f"the cat{c} number {k} of image {i}", "sent_id": sent_id + k}
                         for k in range(3)]  # fmt: skip
                sent_id += 3
                refs.append({"ref_id": ref_id, "ann_id": a, "image_id": i, "split": split,
                             "category_id": c, "sentences": sents,
                             "sent_ids": [s["sent_id"] for s in sents]})  # fmt: skip
    coco_cats = [{"id": c, "name": f"cat{c}", "supercategory": f"super{c % 12}"}
                 for c in range(1, N_COCO_CATS + 1)]  # fmt: skip
    lvis_cats = [{"id": c, "name": f"cat{c}", "synset": f"cat{c}.n.01", "frequency": "fcr"[c % 3],
                  "synonyms": [f"cat{c}"], "def": "a category"}
                 for c in range(1, N_LVIS_CATS + 1)]  # fmt: skip
    (out / "coco" / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "lvis").mkdir(parents=True, exist_ok=True)
    (out / "refcoco" / "refcoco").mkdir(parents=True, exist_ok=True)
    cats = '"categories": ' + json.dumps(coco_cats)
    for part in ("train", "val"):
        _write_json_rows(out / "coco" / "annotations" / f"instances_{part}2017.json", "{",
                         coco_imgs[part], coco_anns[part], cats)  # fmt: skip
        _write_json_rows(out / "lvis" / f"lvis_v1_{part}.json", "{", lvis_imgs[part],
                         lvis_anns[part], '"categories": ' + json.dumps(lvis_cats))  # fmt: skip
    _write_json_rows(
        out / "refcoco" / "refcoco" / "instances.json", "{", ref_images, ref_anns, cats
    )
    with open(out / "refcoco" / "refcoco" / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f)
    (out / "lvis" / "coco_to_synset.json").write_text(
        json.dumps({f"cat{c}": {"synset": f"cat{c}.n.01"} for c in range(1, N_COCO_CATS + 1)})
    )
    vrng = random.Random(seed + 1)

    def linked(i: int):
        if i > n_linked or i not in sizes:
            return None
        W, H = sizes[i]
        objs = [
            (f"cat{c}", *_jitter(vrng, x, y, w, h, VG_SCALE)) for _, c, x, y, w, h in objects[i]
        ]
        return (i, int(W * VG_SCALE), int(H * VG_SCALE), objs)

    vg = generate_vg(out / "vg", scale, seed, linked=linked)
    return {"coco_images": n, "coco_boxes": ann_id, "lvis_boxes": lvis_id, "refcoco_images": n_ref,
            "refs": ref_id, "sentences": sent_id, "vg_linked": n_linked,
            **{f"vg_{k}": v for k, v in vg.items()}}  # fmt: skip


def phase_join_generate(a, clock, since) -> dict:
    root = Path(a.root)
    if a.reuse and (root / "vg" / "region_descriptions.json").is_file():
        return {"wall_s": 0.0, "cpu_s": 0.0, "reused": str(root), "json_mb": _mb(root)}
    t0 = clock()
    counts = generate(root, a.scale)
    return {**since(t0), "written": counts, "json_mb": _mb(root)}


def _mb(root: Path) -> float:
    return round(sum(p.stat().st_size for p in root.rglob("*.json")) / 2**20, 1)


def phase_join(a, clock, since) -> dict:
    """What ``python -m scalar.data validate data=joint`` does, without the Hydra app:
    every split of conf/data/joint.yaml read and joined (COCO, LVIS, VG read once), counts
    and the per-pair join report; then the six-level chains of the referents."""
    from hydra.utils import instantiate

    from scalar.data.__main__ import compose
    from scalar.data.chains import LEVELS, build_chain
    from scalar.data.merge import clear_cache
    from scalar.data.validate import check_split

    cfg = compose(["data=joint", f"data.root={a.root}", "data.source.check_images=false"])
    specs = {s: instantiate(spec, _convert_="all") for s, spec in cfg.data.corpora.items()}
    t0 = clock()
    corpora = {s: r() for s, r in specs.items()}
    out = {**since(t0), "splits": {s: check_split(c) for s, c in corpora.items()}}
    t = os.times()  # the VG reader's region helper process
    out["children_cpu_s"] = round(t.children_user + t.children_system, 2)
    out["children_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
    )
    clear_cache()
    t0, n, full = clock(), 0, 0
    for c in corpora.values():
        for scene in c.scenes:
            for oid in {r.object_id for r in scene.refs}:
                chain = build_chain(scene, scene.object_by_id()[oid])
                n += 1
                full += len(chain) == len(LEVELS)
    out["chains"] = {**since(t0), "referents": n, "six_levels": full}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--scale", type=float, default=1.0)
    a = p.parse_args()
    t = time.perf_counter()
    counts = generate(a.out, a.scale)
    print(json.dumps({**counts, "seconds": round(time.perf_counter() - t, 1)}))


if __name__ == "__main__":
    main()
