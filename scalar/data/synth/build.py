"""``build_synthetic``: render a synthetic shape corpus and write it in the real formats.

Layout of ``out_dir``::

    images/COCO_train2014_{image_id:012d}.png     labelled images, ids from 1 over splits
    unlabeled/{i:06d}.png                         unlabeled pool (held-out shapes included)
    unlabeled/captions.json                       {file: caption}: weak alt-text (RL prompts)
    coco/annotations/instances_{split}.json       COCO instances, split in SPLITS
    refcoco/synthetic/refs(unc).p, instances.json refer-toolkit layout (+ sent_kinds)
    vg/{image_data,objects,attributes,relationships,region_descriptions}.json
    splits.json                                   {image_id: split} for the VG files
    lvis/lvis_v1_{split}.json                     LVIS v1
    manifest.json                                 options, counts, categories

Every scene has its own random generator seeded by ``(seed, split, index)``, so the
output does not depend on ``workers``. Held-out categories appear only in ``heldout``
images (each has at least one, and its refs target held-out objects only) and in the
unlabeled pool.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import numpy as np

from scalar.data.synth import expressions, relations
from scalar.data.synth.camera import save_depth_png
from scalar.data.synth.captions import CAPTIONS_FILE, weak_caption
from scalar.data.synth.layout import (
    LOOK_OPTIONS,
    SIZE_RANGES,
    Look,
    SynthConfig,
    sample_objects,
)
from scalar.data.synth.png import save_png
from scalar.data.synth.scene3d import GROUND, ground_scene
from scalar.data.synth.shapes import BACKGROUND, COLOURS, render
from scalar.data.synth.vg_view import VG_OPTIONS, check_vg_options, vg_view
from scalar.data.synth.world import world_scene
from scalar.data.synth.writers import (
    IMAGE_DIR,
    SPLITS,
    assign_ids,
    category_rows,
    depth_file_name,
    dump_json,
    image_file_name,
    object_area,
    write_coco,
    write_lvis,
    write_refcoco,
)
from scalar.data.synth.writers_vg import write_vg

VERSION = "synthetic-shapes-1"
WORLD_VERSION = "synthetic-world-2"  # the difficulty presets (not flat)
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "heldout": 3, "unlabeled": 4}
N_NEGATIVES = 2
MAX_AUTO_WORKERS = 4
MIN_SCENES_PER_WORKER = 250  # fewer: starting processes costs more than it saves


def make_scene(cfg: SynthConfig, split: str, index: int, image_id: int, path: str) -> dict:
    """Sample, render and save one scene; returns its record (ids not yet assigned)."""
    rng = np.random.default_rng([cfg.seed, SPLIT_CODES[split], index])
    held = tuple(cfg.held_out_categories)
    pool = cfg.seen_categories() if split in ("train", "val", "test") else cfg.category_names()
    must = held if split == "heldout" else ()
    s = cfg.image_size
    preset = cfg.preset()
    if preset is None:  # the flat world, exactly as before the presets
        objs = sample_objects(rng, cfg, pool, must_include=must)
        image = render(objs, s, s, cfg.look.noise, rng)
    elif cfg.geometry == "ground_plane":
        objs, image, depth, cam = ground_scene(rng, cfg, preset, pool, must_include=must)
    else:
        objs, image = world_scene(rng, cfg, preset, pool, must_include=must)
    save_png(image, path)
    record = {"image_id": image_id, "split": split, "width": s, "height": s, "objects": objs}
    if cfg.geometry == "ground_plane" and split != "unlabeled":  # the pool's folder is scanned
        record.update(camera=cam.as_dict(), depth_file=depth_file_name(image_id))
        save_depth_png(depth, str(Path(path).parent / record["depth_file"]))
    size = (s, s)
    if split == "unlabeled":  # weak caption only (drawn after rendering: the PNG is unchanged)
        record["caption"] = weak_caption(objs, cfg.category_names(), rng)
        return record
    table = expressions.scene_relations(objs, size)
    marks = [expressions.unique_attrs(objs, j, cfg.texture, size) for j in range(len(objs))]
    refs, regions, rels = [], [], []
    for i, o in enumerate(objs):
        object_area(o)  # cached for the writers
        if split != "heldout" or o["category"] in held:
            sents = expressions.refer(objs, i, cfg.texture, size, rng, marks, table)
            if sents:
                refs.append(
                    {
                        "object": i,
                        "kinds": [k for k, _ in sents],
                        "sentences": [t for _, t in sents],
                    }
                )
        regions += [
            {"object": i, "phrase": p}
            for p in expressions.region_phrases(objs, i, size, rng, table)
        ]
        for j in range(len(objs)):
            rels += [{"subject": i, "predicate": p, "object": j} for p in table[i][j]]
    present = {o["category"] for o in objs}
    pool = cfg.category_names() if split == "heldout" else cfg.seen_categories()
    absent = [c for c in pool if c not in present]
    k = min(N_NEGATIVES, len(absent))
    negs = sorted(rng.choice(len(absent), size=k, replace=False).tolist()) if k else []
    record.update(
        file_name=image_file_name(image_id),
        refs=refs,
        regions=regions,
        relations=rels,
        neg_categories=[absent[j] for j in negs],
    )
    return record


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: building or reading a corpus makes millions of
    small containers (no cycles), and each full collection would walk all of them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def write_captions(out: Path, unlabeled: list[dict]) -> list[str]:
    """``unlabeled/captions.json``: ``{file name: weak caption}`` of the unlabeled pool
    (:mod:`scalar.data.synth.captions`): no box, no object id, no per-object list."""
    captions = {f"{i:06d}.png": r["caption"] for i, r in enumerate(unlabeled)}
    (out / "unlabeled" / CAPTIONS_FILE).write_text(json.dumps(captions, indent=0))
    return [f"unlabeled/{CAPTIONS_FILE}"]


def _run(task: tuple) -> dict:
    return make_scene(*task)


def default_workers(n_scenes: int) -> int:
    """Processes used when ``workers`` is None: the available cores (at most
    ``MAX_AUTO_WORKERS``), one per ``MIN_SCENES_PER_WORKER`` scenes; 1 inside a daemon
    process (which may not start children)."""
    if multiprocessing.current_process().daemon:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO_WORKERS, n_scenes // MIN_SCENES_PER_WORKER))


def _generate(cfg: SynthConfig, tasks: list[tuple], workers: int | None) -> list[dict]:
    if workers is None:
        workers = default_workers(len(tasks))
    if workers <= 1 or len(tasks) < 2 * workers:
        return [_run(t) for t in tasks]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        return list(ex.map(_run, tasks, chunksize=max(1, len(tasks) // (8 * workers))))


def _split_counts(records: list[dict], labelled: bool) -> dict:
    objs = [o for r in records for o in r["objects"]]
    counts = {
        "images": len(records),
        "objects": len(objs),
        "by_category": dict(sorted(Counter(o["category"] for o in objs).items())),
    }
    same = 0
    for r in records:
        looks = Counter((o["colour"], o["category"], o["texture"]) for o in r["objects"])
        same += sum(n for n in looks.values() if n > 1)
    counts["same_look_objects"] = same
    if labelled:
        kinds = Counter(k for r in records for ref in r["refs"] for k in ref["kinds"])
        counts.update(
            refs=sum(len(r["refs"]) for r in records),
            sentences=sum(kinds.values()),
            sentence_kinds=dict(sorted(kinds.items())),
            regions=sum(len(r["regions"]) for r in records),
            relations=sum(len(r["relations"]) for r in records),
        )
    return counts


def occluded(records: list[dict]) -> int:
    """Objects of ``records`` of which some part is hidden by another object."""
    return sum(o["visible_fraction"] < 1 for r in records for o in r["objects"])


def world_settings(cfg: SynthConfig) -> dict:
    """The manifest's description of the look of the world: background and sizes (flat),
    or the difficulty preset."""
    preset = cfg.preset()
    if preset is None:
        return {
            "background": list(BACKGROUND),
            "size_ranges": {k: list(v) for k, v in SIZE_RANGES.items()},
        }
    out = {"difficulty": cfg.difficulty, "preset": preset.as_dict()}
    if cfg.geometry == "ground_plane":
        out["ground_plane"] = GROUND.as_dict()
    return out


def build_synthetic(
    out_dir: str | Path, workers: int | None = None, config: SynthConfig | None = None, **options
) -> dict:
    """Build the synthetic corpus in ``out_dir``; returns (and writes) its manifest.

    ``options`` are the fields of ``SynthConfig`` (seed, n_train, n_val, n_test,
    n_heldout, n_unlabeled, image_size, min_objects, max_objects, same_look_fraction,
    overlap, texture, noise, held_out_categories, categories, difficulty, geometry); they override
    ``config``. ``difficulty`` is ``flat`` (the original world) or a preset of ``presets.py``.
    ``workers`` > 1 renders in that many processes (None: ``default_workers``); the output
    is the same for any ``workers``.
    """
    known = ({f.name for f in fields(SynthConfig)} - {"look"}) | set(LOOK_OPTIONS) | set(VG_OPTIONS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"build_synthetic: unknown option(s) {unknown}; known: {sorted(known)}")
    look = {k: options.pop(k) for k in LOOK_OPTIONS if k in options}
    vg = {k: options.pop(k) for k in VG_OPTIONS if k in options}  # own VG ids / box jitter
    check_vg_options(**vg)
    if config is not None:
        options = {**{f.name: getattr(config, f.name) for f in fields(SynthConfig)}, **options}
    if look:
        base = options.get("look") or Look()
        options["look"] = Look(**{**{k: getattr(base, k) for k in LOOK_OPTIONS}, **look})
    cfg = SynthConfig(**options)
    cfg.validate()
    out = Path(out_dir)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (out / "unlabeled").mkdir(parents=True, exist_ok=True)

    tasks, image_id = [], 0
    sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test, "heldout": cfg.n_heldout}
    for split in SPLITS:
        for i in range(sizes[split]):
            image_id += 1
            path = str(out / IMAGE_DIR / image_file_name(image_id))
            tasks.append((cfg, split, i, image_id, path))
    for i in range(cfg.n_unlabeled):
        tasks.append((cfg, "unlabeled", i, 0, str(out / "unlabeled" / f"{i:06d}.png")))
    cats = category_rows(cfg.category_names(), cfg.catalogue())
    with paused_gc():
        records = _generate(cfg, tasks, workers)
        by_split = {s: [r for r in records if r["split"] == s] for s in SPLITS}
        assign_ids([r for s in SPLITS for r in by_split[s]])
        files = write_coco(out, by_split, cats)
        files += write_refcoco(out, by_split, cats)
        files += write_vg(out, vg_view(by_split, cfg.seed, **vg))
        files += write_lvis(out, by_split, cats)

        unlabeled = [r for r in records if r["split"] == "unlabeled"]
        files += write_captions(out, unlabeled)

    counts = {s: _split_counts(by_split[s], True) for s in SPLITS}
    counts["unlabeled"] = _split_counts(unlabeled, False)
    if cfg.preset() is not None:
        for s, r in [*((s, by_split[s]) for s in SPLITS), ("unlabeled", unlabeled)]:
            counts[s]["occluded_objects"] = occluded(r)
    held = list(cfg.held_out_categories)
    manifest = {
        "version": VERSION if cfg.preset() is None else WORLD_VERSION,
        "seed": cfg.seed,
        "options": cfg.as_dict(),
        "categories": [{**c, "held_out": c["name"] in held} for c in cats],
        "held_out_categories": held,
        "colours": {k: list(v) for k, v in COLOURS.items()},
        **world_settings(cfg),
        "relations": {
            "predicates": list(relations.PREDICATES),
            "bigger_ratio": relations.BIGGER_RATIO,
            "near_fraction": relations.NEAR_FRACTION,
            "ordinal_min_gap": expressions.ORDINAL_MIN_GAP,
        },
        "counts": counts,
        "image_ids": {
            s: [r["image_id"] for r in by_split[s][:1] + by_split[s][-1:]] for s in SPLITS
        },
        "image_dir": IMAGE_DIR,
        "refcoco": {
            "root": "refcoco",
            "dataset": "synthetic",
            "split_by": "unc",
            "image_pattern": "COCO_train2014_{image_id:012d}.png",
        },  # fmt: skip
        "files": files + ["manifest.json"],
    }
    if any(vg.values()):  # recorded only when set: default builds keep their bytes
        manifest["vg_view"] = vg
    dump_json(manifest, out / "manifest.json")
    return manifest
