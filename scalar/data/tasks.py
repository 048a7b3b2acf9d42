"""The tasks: scenes and concept chains -> ``Sample`` s (prompt template + target).

One fixed prompt per task (``PROMPTS``; spatial QA has one per question type in
``tasks_spatial.SPATIAL_PROMPTS``): evaluation uses exactly these. Boxes are written as
one ``<box>`` trigger each (continuous format, regressed by the spatial decoder) or as
``[x1,y1,x2,y2]`` integers in [0, 999] (textual format); ``target_boxes`` is filled in
both. Every sample carries ``meta["concepts"]``: the chain levels of the objects it is
about, which the collate turns into ``concept_*`` items.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from scalar.core import tokens as T
from scalar.core.boxes import pixel_box_text
from scalar.data.chains import (
    ChainLevel,
    article,
    build_chain,
    definite,
    is_unique,
    mark_grounding,
    ordered_attributes,
    phrase,
)
from scalar.data.sample import PROMPT_KINDS, Sample, VisualPrompt
from scalar.data.scene import Box, ImageInfo, Object, Scene

PROMPTS = {
    "rec": "where is {expression}?",
    "roc": f"what is {T.REGION}?",
    "caption": f"describe {T.REGION}.",
    "grounded": "describe the image with boxes.",
    "chain": "where is {expression}?",
}
ALL_TASKS = ("rec", "roc", "caption", "spatial_qa", "grounded", "chain")
BOX_FORMATS = ("continuous", "textual", "mixed")
CHAIN_TASK_LEVELS = ("supercategory", "category", "attributes", "relations")


def box_text(box: Box, image: ImageInfo) -> str:
    """Pixel box -> ``"[x1,y1,x2,y2]"`` of ``image`` (:func:`scalar.core.boxes.pixel_box_text`)."""
    return pixel_box_text(box, image.width, image.height)


def center(box: Box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def reading_order(objects: Iterable[Object]) -> list[Object]:
    """Left to right by box centre x, ties top to bottom by centre y, then by id."""
    return sorted(objects, key=lambda o: (center(o.box)[0], center(o.box)[1], str(o.id)))


def visual_prompt(obj: Object, kind: str) -> VisualPrompt | None:
    """The object's box, box centre or mask as a visual prompt (None: it has no mask)."""
    if kind == "box":
        return VisualPrompt("box", obj.box)
    if kind == "point":
        cx, cy = center(obj.box)
        return VisualPrompt("point", (cx, cy, cx, cy), point=(cx, cy))
    if kind == "mask":
        return None if obj.mask is None else VisualPrompt("mask", obj.box, mask=obj.mask)
    raise ValueError(f"unknown prompt kind {kind!r}; valid: {list(PROMPT_KINDS)}")


class TaskBuilder:
    """Builds every sample of a scene for the tasks with a positive weight.

    Deterministic: each scene gets its own ``random.Random`` seeded by ``seed`` and the
    image id (mixed box format, sentence and relation choices, level dropout).
    """

    def __init__(
        self,
        tasks: Mapping[str, float] | Iterable[str],
        box_format: str = "continuous",
        mixed_textual_fraction: float = 0.5,
        level_dropout: float = 0.0,
        prompt_kinds: Iterable[str] = PROMPT_KINDS,
        seed: int = 0,
        held_out_categories: Iterable[str] = (),
        max_spatial_pairs: int = 6,
        max_grounded_objects: int = 20,
        ground_concepts: bool = False,
    ):
        weights = dict(tasks) if isinstance(tasks, Mapping) else {t: 1.0 for t in tasks}
        unknown = [t for t in weights if t not in ALL_TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; valid: {list(ALL_TASKS)}")
        if box_format not in BOX_FORMATS:
            raise ValueError(f"unknown box_format {box_format!r}; valid: {list(BOX_FORMATS)}")
        self.prompt_kinds = tuple(prompt_kinds)
        for k in self.prompt_kinds:
            if k not in PROMPT_KINDS:
                raise ValueError(f"unknown prompt kind {k!r}; valid: {list(PROMPT_KINDS)}")
        self.weights = {t: float(w) for t, w in weights.items() if float(w) > 0}
        self.tasks = [t for t in ALL_TASKS if t in self.weights]
        self.box_format, self.mixed_textual_fraction = box_format, mixed_textual_fraction
        self.level_dropout, self.seed = level_dropout, seed
        self.held_out = set(held_out_categories)
        self.max_spatial_pairs, self.max_grounded_objects = max_spatial_pairs, max_grounded_objects
        self.ground_concepts = bool(ground_concepts)  # mark levels naming one object (dense boxes)

    # -- shared pieces ------------------------------------------------------------------
    def _fmt(self, rng: random.Random) -> str:
        if self.box_format == "mixed":
            return "textual" if rng.random() < self.mixed_textual_fraction else "continuous"
        return self.box_format

    def _boxes_target(self, boxes: list[Box], image: ImageInfo, fmt: str) -> list[str]:
        return [box_text(b, image) if fmt == "textual" else T.BOX for b in boxes]

    def _meta(self, scene: Scene, obj: Object, **extra) -> dict:
        meta = {
            "object_id": obj.id,
            "category": obj.category,
            "split": scene.split,
            "held_out": obj.category in self.held_out,
            "image_id": scene.image.id,
        }
        meta.update(extra)
        return meta

    # -- tasks --------------------------------------------------------------------------
    def rec(self, scene: Scene, rng, chains) -> list[Sample]:
        by_id, out = scene.object_by_id(), []
        kinds_by_ref = scene.meta.get("sent_kinds", {}) or {}
        for ref in scene.refs:
            obj = by_id.get(ref.object_id)
            if obj is None:
                continue
            kinds = kinds_by_ref.get(ref.ref_id) or []
            for j, sent in enumerate(ref.sentences):
                fmt = self._fmt(rng)
                meta = self._meta(scene, obj, ref_id=ref.ref_id, box_format=fmt)
                meta.update(split=ref.split or scene.split, concepts=chains[obj.id])
                meta["sent_kind"] = kinds[j] if j < len(kinds) else None
                target = self._boxes_target([obj.box], scene.image, fmt)[0]
                prompt = PROMPTS["rec"].format(expression=sent)
                out.append(Sample("rec", scene.image, prompt, target, [], [obj.box], meta))
        return out

    def roc(self, scene: Scene, rng, chains) -> list[Sample]:
        out = []
        for obj in scene.objects:
            if obj.iscrowd:
                continue
            for kind in self.prompt_kinds:
                vp = visual_prompt(obj, kind)
                if vp is None:
                    continue
                meta = self._meta(scene, obj, prompt_kind=kind, concepts=chains[obj.id])
                out.append(Sample("roc", scene.image, PROMPTS["roc"], obj.category, [vp], [], meta))
        return out

    def caption(self, scene: Scene, rng, chains) -> list[Sample]:
        out = []
        groups: dict[tuple, list] = {}
        for r in scene.regions:  # regions with the same box are one region with several texts
            groups.setdefault(tuple(round(v, 1) for v in r.box), []).append(r)
        for regions in groups.values():
            texts = list(dict.fromkeys(r.text for r in regions))
            meta = {"region_id": regions[0].id, "references": texts, "source": "region",
                    "split": scene.split, "image_id": scene.image.id, "concepts": []}  # fmt: skip
            vp = VisualPrompt("box", regions[0].box)
            out.append(Sample("caption", scene.image, PROMPTS["caption"], texts[0], [vp], [], meta))
        by_id = scene.object_by_id()
        per_object: dict = {}
        for ref in scene.refs:
            if ref.object_id in by_id:
                per_object.setdefault(ref.object_id, []).extend(ref.sentences)
        for oid, sents in per_object.items():
            obj, refs = by_id[oid], list(dict.fromkeys(sents))
            meta = self._meta(scene, obj, references=refs, source="refexp", concepts=chains[oid])
            vp = VisualPrompt("box", obj.box)
            target = rng.choice(refs)
            out.append(Sample("caption", scene.image, PROMPTS["caption"], target, [vp], [], meta))
        return out

    def grounded(self, scene: Scene, rng, chains) -> list[Sample]:
        objs = [o for o in scene.objects if not o.iscrowd]
        if not objs:
            return []
        if len(objs) > self.max_grounded_objects:  # keep the largest
            objs = sorted(objs, key=lambda o: -(o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))
            objs = objs[: self.max_grounded_objects]
        objs = reading_order(objs)
        fmt = self._fmt(rng)
        boxes = [o.box for o in objs]
        marks = self._boxes_target(boxes, scene.image, fmt)
        names = [article(phrase(o.category, ordered_attributes(o))) for o in objs]
        target = ", ".join(f"{n} {m}" for n, m in zip(names, marks))
        meta = {"object_ids": [o.id for o in objs], "box_format": fmt, "split": scene.split,
                "image_id": scene.image.id, "concepts": [c for o in objs for c in chains[o.id]]}  # fmt: skip
        return [Sample("grounded", scene.image, PROMPTS["grounded"], target, [], boxes, meta)]

    def chain(self, scene: Scene, rng, chains) -> list[Sample]:
        out = []
        for obj in scene.objects:
            if obj.iscrowd:
                continue
            for level in build_chain(scene, obj):
                if level.level not in CHAIN_TASK_LEVELS or not is_unique(scene, level):
                    continue
                fmt = self._fmt(rng)
                expr = definite(level.text)
                meta = self._meta(scene, obj, level=level.level, box_format=fmt,
                                  expression=expr, concepts=[level])  # fmt: skip
                target = self._boxes_target([obj.box], scene.image, fmt)[0]
                prompt = PROMPTS["chain"].format(expression=expr)
                out.append(Sample("chain", scene.image, prompt, target, [], [obj.box], meta))
        return out

    def spatial_qa(self, scene: Scene, rng, chains) -> list[Sample]:
        from scalar.data.readers.geometry import has_geometry
        from scalar.data.tasks_spatial import spatial_samples
        from scalar.data.tasks_spatial3d import spatial3d_samples

        if has_geometry(scene):  # metric 3-D templates from the scene's 3-D record
            return spatial3d_samples(scene, rng, chains, self.max_spatial_pairs)
        return spatial_samples(scene, rng, chains, self.max_spatial_pairs)

    # -- entry points -------------------------------------------------------------------
    def build(self, scene: Scene) -> list[Sample]:
        """All samples of ``scene`` for the configured tasks, in task order."""
        rng = random.Random(f"{self.seed}/{scene.image.id}")
        chains: dict = {}
        for obj in scene.objects:
            chains[obj.id] = build_chain(scene, obj, rng, self.level_dropout)
            if self.ground_concepts:
                mark_grounding(scene, chains[obj.id])
        out: list[Sample] = []
        for task in self.tasks:
            out.extend(getattr(self, task)(scene, rng, chains))
        boxes = [o.box for o in scene.objects]  # one list shared by the scene's samples
        for s in out:
            s.meta["scene_boxes"] = boxes  # the objectness target (loss.objectness_weight)
        return out

    def build_all(self, scenes: Iterable[Scene]) -> list[Sample]:
        return [s for scene in scenes for s in self.build(scene)]


def concepts_of(sample: Sample) -> list[ChainLevel]:
    return list(sample.meta.get("concepts") or [])
