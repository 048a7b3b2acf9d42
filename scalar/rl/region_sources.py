"""Labeled region prompts with the SPR and SCST-seed reward contexts (``rl/prompts=regions``).

The datamodule's own training rows, as :class:`~scalar.rl.sources.LabeledPrompts`, with
more context for each sampled region description (caption rows):

- ``entities``: the reference entities of the region: categories of the annotated objects
  whose centre lies in the region, and category names its reference texts mention
  (``reward.terms.exhaustiveness``: share mentioned, seed 002's SDE);
- ``pred_boxes_list`` / ``ref_boxes_list``: the category names the description mentions
  (at most ``max_mentions``), each grounded back greedily by the model (``where is
  {name}?``), against the region and its objects (``localization``, SPR);
- ``region_embeddings`` / ``text_embeddings``: the region crop and the description, by a
  CLIP model (``semantic=clip``: a :class:`~scalar.rewards.clip.ClipScorer` with local
  weights) or by the model's own region / concept towers (``semantic=own``, the named
  fallback; ``none``: no semantic term).

Count questions (``spatial_qa`` rows with ``question_type: count``) get ``pred_counts``
(the first number of the answer) and ``gt_counts`` (``counting``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scalar.core.batch import row_image
from scalar.core.pictures import image_for_sample
from scalar.rewards.clip import ClipScorer, crop
from scalar.rewards.functions import parse_count
from scalar.rewards.mentions import mentioned_names
from scalar.rl.grounding import ground, norm_box
from scalar.rl.labeled import labeled_contexts
from scalar.rl.sources import LabeledPrompts

SEMANTIC = ("clip", "own", "none")


def _inside(box: Sequence[float], region: Sequence[float]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


class RegionPrompts(LabeledPrompts):
    """``tasks``: rows that become prompts; ``semantic``: clip | own | none (see module);
    ``clip``: the :class:`ClipScorer` of ``semantic=clip``, else built from ``clip_model``
    (an open_clip name), ``clip_weights`` (a local file) and ``clip_configs`` (a folder of
    extra open_clip configs); ``localize``: build the localization context (groundings of
    the names mentioned); ``ground_tokens``: budget of
    the groundings of mentioned names; ``max_mentions``: names grounded per description;
    ``image_mean`` / ``image_std``: de-normalise batch images when a file is unreadable."""

    def __init__(self, *, tasks: Sequence[str] = ("caption",), semantic: str = "own",
                 clip: ClipScorer | None = None, clip_model: str | None = None,
                 clip_weights: str | None = None, clip_configs: str | None = None,
                 localize: bool = True, ground_tokens: int = 8, max_mentions: int = 3,
                 image_mean: Sequence[float] | None = None,
                 image_std: Sequence[float] | None = None):  # fmt: skip
        super().__init__(tasks=tasks)
        if semantic not in SEMANTIC:
            raise ValueError(f"rl.prompts.semantic must be one of {SEMANTIC}, got {semantic!r}")
        if semantic == "clip" and clip is None:
            if not clip_model or not clip_weights:
                raise ValueError("rl.prompts.semantic=clip needs rl.prompts.clip_model and "
                                 "rl.prompts.clip_weights (a local open_clip weights file); "
                                 "semantic=own uses the model's own towers")  # fmt: skip
            clip = ClipScorer(clip_model, clip_weights, clip_configs)
        self.semantic, self.clip = semantic, clip
        self.localize = bool(localize)
        self.ground_tokens, self.max_mentions = int(ground_tokens), int(max_mentions)
        self.mean, self.std = image_mean, image_std
        self.collator, self.names = None, []
        self.objects: dict[Any, list[tuple[tuple[float, ...], str]]] = {}

    def setup(self, datamodule) -> None:
        super().setup(datamodule)
        self.collator = datamodule.collator
        corpora = datamodule.read_corpora().values()
        self.names = sorted({c.name for corpus in corpora for c in corpus.categories})
        for corpus in corpora:
            for scene in corpus.scenes:
                self.objects[scene.image.id] = [(tuple(o.box), o.category) for o in scene.objects
                                                if not o.iscrowd]  # fmt: skip

    # ------------------------------------------------------------------ contexts
    def region_objects(self, sample) -> list[tuple[tuple[float, ...], str]]:
        region = sample.regions[0].box
        return [(b, c) for b, c in self.objects.get(sample.image.id, []) if _inside(b, region)]

    def contexts(self, model, batch: Mapping[str, Any], gen: Mapping[str, Any], device=None):
        samples, out = batch["samples"], []
        for rows, ctx in labeled_contexts(batch, gen):
            task = samples[rows[0]].task
            if task == "caption":
                ctx.update(self.caption_context(model, batch, rows, ctx["texts"], device))
                out.append((rows, ctx))
            elif task == "spatial_qa":
                count = [k for k, j in enumerate(rows)
                         if samples[j].meta.get("question_type") == "count"]  # fmt: skip
                rest = [k for k in range(len(rows)) if k not in count]
                if count:
                    texts = [ctx["texts"][k] for k in count]
                    out.append(([rows[k] for k in count], {
                        "texts": texts, "pred_counts": parse_count(texts),
                        "gt_counts": [int(samples[rows[k]].meta["value"]) for k in count]}))  # fmt: skip
                if rest:
                    out.append(
                        ([rows[k] for k in rest], {"texts": [ctx["texts"][k] for k in rest]})
                    )
            else:
                out.append((rows, ctx))
        return out

    def caption_context(self, model, batch, rows: list[int], texts: list[str], device=None):
        samples = [batch["samples"][j] for j in rows]
        frames = [(s.image.width, s.image.height) for s in samples]
        regions = [s.regions[0].box for s in samples]
        objs = [self.region_objects(s) for s in samples]
        entities = []
        for s, o in zip(samples, objs):
            refs = " ".join(s.meta.get("references") or [s.target])
            entities.append(
                list(dict.fromkeys([c for _, c in o] + mentioned_names(refs, self.names)))
            )
        mentions = [mentioned_names(t, self.names)[: self.max_mentions] for t in texts]
        ctx = {"entities": entities, "mentions": mentions}
        if self.localize:
            ctx.update(
                self.localization(model, batch, rows, mentions, regions, frames, objs, device)
            )
        if self.semantic != "none":
            emb = self.embeddings(model, batch, rows, texts, regions, frames)
            ctx.update(region_embeddings=emb[0], text_embeddings=emb[1])
        return ctx

    def localization(self, model, batch, rows, mentions, regions, frames, objs, device=None):
        """Each mentioned name grounded greedily, against the region and its objects."""
        samples = [batch["samples"][j] for j in rows]
        asks = [(k, name) for k, m in enumerate(mentions) for name in m]
        images = [row_image(batch, rows[k]) for k, _ in asks]
        found = ground(model, self.collator, images, [samples[k].image for k, _ in asks],
                       [n for _, n in asks], self.ground_tokens, device)  # fmt: skip
        pred = [[] for _ in rows]
        for (k, _), box in zip(asks, found):
            if box is not None:
                pred[k].append(tuple(box))
        ref = [[norm_box(r, f)] + [norm_box(b, f) for b, _ in o]
               for r, f, o in zip(regions, frames, objs)]  # fmt: skip
        return {"pred_boxes_list": pred, "ref_boxes_list": ref}

    @torch.no_grad()
    def embeddings(self, model, batch, rows, texts, regions, frames):
        """``(region [R, D], text [R, D])`` embeddings of the crops and the descriptions."""
        if self.semantic == "clip":
            self.clip.to(batch["images"].device)
            crops = [crop(image_for_sample(batch["samples"][j], row_image(batch, j), self.mean,
                                           self.std), r, f)
                     for j, r, f in zip(rows, regions, frames)]  # fmt: skip
            return self.clip.embed(crops, texts)
        return own_embeddings(model, self.collator, batch, rows, texts,
                              [norm_box(r, f) for r, f in zip(regions, frames)])  # fmt: skip


def own_embeddings(model, collator, batch, rows, texts, regions01):
    """The model's own region (of ``regions01``) and text (concept tower) embeddings."""
    dev = batch["images"].device
    enc = collator.encode(list(texts))
    width = max([len(e) for e in enc] + [1])
    ids = torch.full((len(rows), width), collator.pad, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for r, e in enumerate(enc):
        ids[r, : len(e)], att[r, : len(e)] = torch.tensor(e, dtype=torch.long), 1
    patches, grid_hw = model.encode_images(torch.stack([row_image(batch, j) for j in rows]))
    sub = {"concept_boxes": torch.tensor(regions01, dtype=torch.float32, device=dev),
           "concept_batch": torch.arange(len(rows), device=dev),
           "concept_input_ids": ids.to(dev), "concept_attention_mask": att.to(dev)}  # fmt: skip
    out = model.encode_concepts(sub, patches, grid_hw)
    return out["region_emb"].float().cpu(), out["concept_emb"].float().cpu()
