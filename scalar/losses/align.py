"""The align stage's objective: LM + box regression + region-concept contrastive terms."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from scalar.losses.box import BoxLoss
from scalar.losses.lm import LMLoss


class AlignLoss(nn.Module):
    """``lm_weight * LM + box_weight * box + dense_weight * dense + contrastive_weight *
    contrastive``. ``dense`` (with ``dense_l1``/``dense_giou``/``dense_attn``) is the box
    loss of dense concept grounding: every chain level that names one object
    (``concept_ground``) grounded from its own text (``concept_box_pred``).

    ``forward(out, batch)`` takes the model output (``logits``, optionally ``box_pred``,
    ``region_emb``/``concept_emb``) and the batch; returns every named term: ``lm``,
    ``box`` with ``box_l1``/``box_giou``, ``contrastive`` with the contrastive loss's
    own terms (``tdist``, ``nu``, ``tdist_l{level}`` or ``infonce``, ...), and ``loss``.
    A term whose inputs are absent from ``out`` (no box triggers, no concepts, no
    contrastive head) is left out of the dict and of the sum. The Student-t ``nu`` is the
    contrastive term's own (``loss.contrastive.nu`` on the command line).
    """

    def __init__(
        self,
        lm_weight: float = 1.0,
        box_weight: float = 1.0,
        contrastive_weight: float = 0.1,
        box: nn.Module | None = None,
        contrastive: nn.Module | None = None,
        dense_weight: float = 0.0,
    ):
        super().__init__()
        self.lm_weight, self.box_weight = float(lm_weight), float(box_weight)
        self.dense_weight = float(dense_weight)
        self.contrastive_weight = float(contrastive_weight)
        self.lm = LMLoss()
        self.box = box if box is not None else BoxLoss()
        self.contrastive = contrastive

    def forward(self, out: dict[str, Any], batch: dict[str, Any]) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        total: Tensor | None = None

        def add(name: str, value: Tensor, weight: float) -> None:
            nonlocal total
            terms[name] = value
            if weight:
                total = value * weight if total is None else total + value * weight

        if self.lm_weight and "logits" in out and "labels" in batch:
            add("lm", self.lm(out["logits"], batch["labels"])["lm"], self.lm_weight)
        pred = out.get("box_pred")
        if self.box_weight and pred is not None and "target_boxes" in batch and len(pred) > 0:
            box = self.box(
                pred, batch["target_boxes"].to(pred), out.get("box_attn"), out.get("grid_hw")
            )
            terms.update({k: v for k, v in box.items() if k != "loss"})
            add("box", box["loss"], self.box_weight)
        dense = out.get("concept_box_pred")
        if self.dense_weight and dense is not None and len(dense) > 0:
            target = batch["concept_boxes"][batch["concept_ground"].to(dense.device)].to(dense)
            box = self.box(dense, target, out.get("concept_box_attn"), out.get("grid_hw"))
            terms.update({"dense_" + k[4:]: v for k, v in box.items() if k != "loss"})
            add("dense", box["loss"], self.dense_weight)
        r, c = out.get("region_emb"), out.get("concept_emb")
        if (
            self.contrastive is not None
            and self.contrastive_weight
            and r is not None
            and c is not None
        ):
            if len(r) > 0:
                con = self.contrastive(r, c, batch["concept_ids"], batch.get("concept_levels"))
                terms.update({k: v for k, v in con.items() if k != "loss"})
                add("contrastive", con["loss"], self.contrastive_weight)
        if total is None:
            ref = out.get("logits")
            zero = ref.sum() * 0.0 if isinstance(ref, Tensor) else torch.zeros(())
            total = zero
        terms["loss"] = total
        return terms
