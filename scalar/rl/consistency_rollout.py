"""The annotation-free consistency reward pipeline (docs/design.md, RL stage).

Policy rows per image: (a) ``describe <region>.`` for a proposal R; (b) ``what is
<region>?`` for R as a box, a point and a mask prompt; (c) where the image has referring
expressions (text only), the expression is grounded greedily to B1 and ``describe <region>.``
is asked for B1; (d) ``ground`` rows: the grounding itself is the action
(:mod:`scalar.rl.grounding`): ``where is {query}?`` for text-only queries of the image,
a box B sampled per row, described greedily (D) and D grounded greedily again (B').
After sampling, every description is grounded greedily with ``where is
{description}?``; the reward contexts feed :mod:`scalar.rewards.consistency`:
(a) ``describe_then_ground_reward(R, R', other proposals)``; (b) the share of the other
prompt kinds' greedy answers the sampled category agrees with; (c) ``IoU(B1, R')``;
(d) ``query_agreement_reward(query, D)`` and ``IoU(B, B')``. Boxes are xyxy in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from scalar.core.batch import row_image
from scalar.rl.grounding import greedy_texts, ground, ground_context, ground_rows, norm_box, to_px
from scalar.rl.rollout import caption_sample, roc_sample

ROLES = ("describe", "format", "gdg", "ground")


class ConsistencyRollout:
    """Builds the policy rows of a prompt-image batch and the reward contexts of samples.

    ``roles``: which of describe / format / gdg rows to build; ``kinds``: prompt kinds of
    the format rows; ``ground_tokens``: budget of the greedy groundings and anchors;
    ``ground_queries``: ground rows per image (distinct queries, when it has that many);
    ``describe_tokens``: budget of the greedy descriptions of sampled boxes;
    ``category_names``: the vocabulary of category words (mutual exclusivity of ground rows).
    """

    def __init__(
        self,
        collator,
        roles: Sequence[str] = ROLES,
        kinds: Sequence[str] = ("box", "point", "mask"),
        ground_tokens: int = 8,
        seed: int = 0,
        ground_queries: int = 2,
        describe_tokens: int = 16,
        category_names: Sequence[str] = (),
    ):
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown consistency roles {unknown} (choose from {ROLES})")
        if "format" in roles and len(kinds) < 2:
            raise ValueError("format consistency needs >= 2 prompt kinds")
        self.collator, self.roles, self.kinds = collator, tuple(roles), tuple(kinds)
        self.ground_tokens = int(ground_tokens)
        self.ground_queries, self.describe_tokens = int(ground_queries), int(describe_tokens)
        self.names = frozenset(category_names)
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ prompts
    def prompts(self, model, items: Sequence[dict], device=None):
        """Policy prompt rows ``(samples, images)``; meta carries what the rewards need."""
        samples, images = [], []
        gdg_items, ground_items = [], []
        for i, it in enumerate(items):
            info, size, props = it["scene"].image, it["size"], list(it["proposals"])
            if props:
                k = int(self.rng.integers(len(props)))
                region, mask = props[k], it["masks"][k]
                others = [norm_box(b, size) for j, b in enumerate(props) if j != k]
                r01 = norm_box(region, size)
            if "describe" in self.roles and props:
                samples.append(caption_sample(info, region, "box", role="describe",
                                              region=r01, others=others, item=i))  # fmt: skip
                images.append(it["image"])
            if "format" in self.roles and props:
                for kind in self.kinds:
                    samples.append(roc_sample(info, region, kind, mask, role="format",
                                              prompt_kind=kind, region=r01, item=i))  # fmt: skip
                    images.append(it["image"])
            if "ground" in self.roles and it.get("expressions"):
                exprs = it["expressions"]
                pick = self.rng.permutation(len(exprs))[: self.ground_queries].tolist()
                ground_items.append((i, it, pick))
            if "gdg" in self.roles and it.get("expressions"):
                expr = it["expressions"][int(self.rng.integers(len(it["expressions"])))]
                gdg_items.append((i, it, expr))
        if gdg_items:
            firsts = ground(model, self.collator, [it["image"] for _, it, _ in gdg_items],
                            [it["scene"].image for _, it, _ in gdg_items],
                            [e for _, _, e in gdg_items], self.ground_tokens, device)  # fmt: skip
            for (i, it, expr), b1 in zip(gdg_items, firsts):
                if b1 is None:
                    continue  # nothing grounded: no describe prompt to ask
                box = to_px(b1, it["size"])
                samples.append(caption_sample(it["scene"].image, box, "box", role="gdg",
                                              first=tuple(b1), expression=expr, item=i))  # fmt: skip
                images.append(it["image"])
        if ground_items:
            rows, imgs = ground_rows(model, self.collator, ground_items, self.names, device)
            samples, images = samples + rows, images + imgs
        self._anchor_formats(model, samples, images, device)
        return samples, images

    def _anchor_formats(self, model, samples, images, device) -> None:
        """Greedy answers of every format row, shared by the samples of the same region."""
        rows = [j for j, s in enumerate(samples) if s.meta.get("role") == "format"]
        if not rows:
            return
        texts = greedy_texts(model, self.collator, [samples[j] for j in rows],
                             [images[j] for j in rows], self.ground_tokens, device)  # fmt: skip
        answers: dict[int, dict[str, str]] = {}
        for j, t in zip(rows, texts):
            answers.setdefault(samples[j].meta["item"], {})[samples[j].meta["prompt_kind"]] = t
        for j in rows:
            s = samples[j]
            s.meta["anchors"] = {
                k: v for k, v in answers[s.meta["item"]].items() if k != s.meta["prompt_kind"]
            }

    # ------------------------------------------------------------------ contexts
    def contexts(self, model, batch: Mapping[str, Any], gen: Mapping[str, Any], device=None):
        """Reward contexts ``[(rows, context)]`` of generated rows, one per role."""
        samples, texts = batch["samples"], gen["texts"]
        by_role: dict[str, list[int]] = {}
        for j, s in enumerate(samples):
            by_role.setdefault(s.meta.get("role", ""), []).append(j)
        out = []
        described = by_role.get("describe", []) + by_role.get("gdg", [])
        grounded = dict(
            zip(described, ground(model, self.collator, [row_image(batch, j) for j in described],
                                  [samples[j].image for j in described],
                                  [texts[j] for j in described], self.ground_tokens, device))
        )  # fmt: skip
        rows = by_role.get("describe", [])
        if rows:
            region = [samples[j].meta["region"] for j in rows]
            emb = self.embeddings(model, batch, rows, region, [texts[j] for j in rows])
            out.append((rows, {
                "texts": [texts[j] for j in rows],
                "region_boxes": region,
                "grounded_boxes": [grounded[j] for j in rows],
                "other_boxes": [samples[j].meta["others"] for j in rows],
                "pred_boxes_list": [[grounded[j]] if grounded[j] else [] for j in rows],
                "ref_boxes_list": [[r] for r in region],
                "region_embeddings": emb[0],
                "text_embeddings": emb[1],
            }))  # fmt: skip
        rows = by_role.get("gdg", [])
        if rows:
            out.append((rows, {
                "texts": [texts[j] for j in rows],
                "first_boxes": [samples[j].meta["first"] for j in rows],
                "second_boxes": [grounded[j] for j in rows],
            }))  # fmt: skip
        rows = by_role.get("format", [])
        if rows:
            out.append((rows, {
                "texts": [texts[j] for j in rows],
                "prompt_kinds": [samples[j].meta["prompt_kind"] for j in rows],
                "anchors": [samples[j].meta.get("anchors", {}) for j in rows],
            }))  # fmt: skip
        return out

    def ground_contexts(self, model, batch: Mapping[str, Any], boxes: Sequence, device=None,
                        describe: bool = True):  # fmt: skip
        """Reward contexts of ``ground`` rows sampled at ``boxes`` (see ``ground_context``)."""
        tokens = (self.describe_tokens, self.ground_tokens) if describe else None
        return ground_context(model, self.collator, batch, boxes, tokens, device)

    @torch.no_grad()
    def embeddings(self, model, batch, rows, regions01, texts):
        """The model's own region (of R) and text (of the description) embeddings."""
        dev = batch["images"].device
        enc = self.collator.encode(list(texts))
        width = max([len(e) for e in enc] + [1])
        ids = torch.full((len(rows), width), self.collator.pad, dtype=torch.long)
        att = torch.zeros((len(rows), width), dtype=torch.long)
        for r, e in enumerate(enc):
            ids[r, : len(e)], att[r, : len(e)] = torch.tensor(e, dtype=torch.long), 1
        images = torch.stack([row_image(batch, j) for j in rows])
        patches, grid_hw = model.encode_images(images)
        sub = {
            "concept_boxes": torch.tensor(regions01, dtype=torch.float32, device=dev),
            "concept_batch": torch.arange(len(rows), device=dev),
            "concept_input_ids": ids.to(dev),
            "concept_attention_mask": att.to(dev),
        }
        out = model.encode_concepts(sub, patches, grid_hw)
        return out["region_emb"].float().cpu(), out["concept_emb"].float().cpu()
