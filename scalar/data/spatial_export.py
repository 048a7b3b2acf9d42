"""``python -m scalar.data spatial_qa``: the metric 3-D QA of a configured corpus as JSON lines.

Each scene's geometry comes from ``source``:

- ``record``: the corpus's 3-D record (``Scene.meta["geometry"]``, the ground-plane world);
- ``depth_map``: lifted (``lift3d``) from the depth map file the corpus records per image;
- ``model``: lifted from the depth predicted by the local model ``depth`` (``depth_model``),
  with the data's intrinsics or, when it has none, a ``fov``-degree field of view;
- ``auto``: ``record`` when the scene has one, else ``model`` when ``depth`` is given.

Scenes without geometry (or with fewer than two lifted objects) are counted and left out.
Writes ``out`` (JSON lines: split, image, question, answer, question_type, answer_type,
value, unit, object_ids, geometry source) and ``<out>.counts.json``: counts per template
and split, how geometry was obtained (the intrinsics assumption included), lifting errors
against the record when the corpus has one, and the baselines of ``spatial_baselines``
(fitted on the ``train`` split when it is among ``splits``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scalar.data.chains import build_chain
from scalar.data.lift3d import centre_errors, intrinsics_from_fov, lift_scene
from scalar.data.readers.geometry import has_geometry
from scalar.data.scene import Scene
from scalar.data.tasks_spatial3d import spatial3d_samples

SOURCES = ("auto", "record", "depth_map", "model")


class Lifter:
    """Geometry of a scene from ``source`` (see the module docstring)."""

    def __init__(self, source: str, depth: str | None, fov: float, scale: float, device: str):
        if source not in SOURCES:
            raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
        if source == "model" and not depth:
            raise ValueError("source=model needs depth=<local depth model directory>")
        self.source, self.fov = source, float(fov)
        self.model = None
        if depth and source in ("auto", "model"):
            from scalar.data.depth_model import DepthModel

            self.model = DepthModel(depth, device=device, scale=scale)
        self.counts: Counter[str] = Counter()
        self.errors: list[float] = []

    def _intrinsics(self, scene: Scene) -> tuple[dict, str]:
        geo = scene.meta.get("geometry") or {}
        if "intrinsics" in geo:
            return geo["intrinsics"], "data"
        k = intrinsics_from_fov(scene.image.width, scene.image.height, self.fov)
        return k, f"assumed horizontal field of view {self.fov:g} degrees"

    def __call__(self, scene: Scene) -> tuple[dict | None, str]:
        source = self.source
        if source == "auto":
            source = "record" if has_geometry(scene) else "model" if self.model else None
        if source == "record":
            return (scene.meta["geometry"], "record") if has_geometry(scene) else (None, "none")
        if source == "depth_map":
            path = (scene.meta.get("geometry") or {}).get("depth_file")
            if path is None:
                return None, "none"
            from scalar.data.synth.camera import load_depth_png

            depth = load_depth_png(path)
        elif source == "model":
            from PIL import Image

            with Image.open(scene.image.path) as im:
                depth = self.model(im)
        else:
            return None, "none"
        k, how = self._intrinsics(scene)
        lifted = lift_scene(depth, k, scene.objects)
        lifted["intrinsics_source"] = how
        self.counts[f"intrinsics: {how}"] += 1
        if has_geometry(scene):
            self.errors += centre_errors(lifted, scene.meta["geometry"])
        return (lifted, source) if len(lifted["objects"]) >= 2 else (None, "too_few_lifted")


def scene_rows(scene: Scene, geo: dict, how: str, split: str, max_pairs: int) -> list[dict]:
    rng = random.Random(f"spatial_qa/{scene.image.id}")
    chains = {o.id: build_chain(scene, o) for o in scene.objects}
    rows = []
    for s in spatial3d_samples(scene, rng, chains, max_pairs, geometry=geo):
        m = s.meta
        rows.append({"split": split, "image_id": scene.image.id, "image": scene.image.path,
                     "question": s.prompt, "answer": s.target, "question_type": m["question_type"],
                     "answer_type": m["answer_type"], "value": m["value"], "unit": m.get("unit"),
                     "object_ids": m["object_ids"], "geometry": how})  # fmt: skip
    return rows


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def export(corpora: dict[str, Any], lifter: Lifter, out: Path, max_pairs: int,
           baselines: Callable[[dict[str, list[dict]]], dict] | None = None) -> dict:  # fmt: skip
    """Write the QA of ``corpora`` (split -> Corpus) to ``out``; returns the summary.
    ``baselines`` (e.g. ``scalar.metrics.spatial_baselines.split_baselines``, given by the
    command) scores the answer-free baselines of the written rows, split -> rows."""

    out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Counter] = {}
    scenes: Counter[str] = Counter()
    by_split: dict[str, list[dict]] = {}
    with open(out, "w", encoding="utf-8") as f:
        for split, corpus in corpora.items():
            rows_of_split = by_split.setdefault(split, [])
            for scene in corpus.scenes:
                geo, how = lifter(scene)
                scenes[f"{split}: {how}"] += 1
                if geo is None:
                    continue
                for row in scene_rows(scene, geo, how, split, max_pairs):
                    f.write(json.dumps(row, default=_plain) + "\n")
                    counts.setdefault(split, Counter())[row["question_type"]] += 1
                    rows_of_split.append(row)
    summary: dict[str, Any] = {
        "file": str(out),
        "questions": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "total": {s: sum(c.values()) for s, c in counts.items()},
        "scenes": dict(sorted(scenes.items())),
        "lifting": dict(sorted(lifter.counts.items())),
    }
    if lifter.model is not None:
        summary["depth_model"] = lifter.model.describe()
    if lifter.errors:
        errs = np.asarray(lifter.errors)
        summary["lifting_centre_error"] = {"median": round(float(np.median(errs)), 4),
                                           "p90": round(float(np.percentile(errs, 90)), 4),
                                           "n": int(len(errs))}  # fmt: skip
    if baselines is not None:
        fitted = baselines(by_split)
        if fitted:
            summary["baselines"] = fitted
    Path(f"{out}.counts.json").write_text(json.dumps(summary, indent=1, default=_plain))
    return summary
