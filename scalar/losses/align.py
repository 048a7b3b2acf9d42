"""The align stage's objective: LM + box regression + region-concept contrastive terms."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scalar.losses.box import BoxLoss, cell_box_targets, inside_cells
from scalar.losses.lm import LMLoss


class AlignLoss(nn.Module):
    """``lm_weight * LM + box_weight * box + dense_weight * dense + contrastive_weight *
    contrastive``. ``dense`` (with ``dense_l1``/``dense_giou``/``dense_attn``) is the box
    loss of dense concept grounding: every chain level that names one object
    (``concept_ground``) grounded from its own text (``concept_box_pred``).

    ``forward(out, batch)`` takes the model output (``logits``, optionally ``box_pred``,
    ``region_emb``/``concept_emb``) and the batch; returns every named term: ``lm``,
    ``box`` with ``box_l1``/``box_giou``, ``contrastive`` with the contrastive loss's
    own terms (``tdist``, ``nu``, ``tdist_l{level}`` or ``infonce``, ...), ``objectness``
    (binary cross entropy of the model's per-patch ``objectness_logits`` against "the
    patch centre lies in an annotated object's box", on images whose rows list their
    scene's objects: ``object_boxes``), ``cells`` (with ``cells_l1``/``cells_giou``: the box
    loss of the ``cells`` box head's per-cell boxes against the smallest annotated object
    each cell lies on, over those images), and ``loss``.
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
        objectness_weight: float = 0.0,
        cell_box_weight: float = 0.0,
    ):
        super().__init__()
        self.lm_weight, self.box_weight = float(lm_weight), float(box_weight)
        self.dense_weight = float(dense_weight)
        self.objectness_weight = float(objectness_weight)
        self.cell_box_weight = float(cell_box_weight)
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
        obj = out.get("objectness_logits")
        if self.objectness_weight and obj is not None and "object_boxes" in batch:
            term = objectness_loss(obj, batch, out["grid_hw"])
            if term is not None:
                add("objectness", term, self.objectness_weight)
        cells = out.get("cell_boxes")
        if self.cell_box_weight and cells is not None and "object_boxes" in batch:
            box = cell_box_loss(cells, batch, out["grid_hw"], self.box)
            if box is not None:
                terms.update({"cells_" + k[4:]: v for k, v in box.items() if k != "loss"})
                add("cells", box["loss"], self.cell_box_weight)
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


def objectness_targets(batch: dict[str, Any], num_images: int, grid_hw) -> tuple[Tensor, Tensor]:
    """``(targets [U, P] float, known [U] bool)``: 1 on the cells whose centre lies in a box
    of ``object_boxes`` of that image (the centre cell of a box no cell centre falls in),
    and which images list their scene's objects (``scene_known`` of any of their rows)."""
    boxes = batch["object_boxes"].float()
    image_index = batch["image_index"].to(boxes.device)
    h, w = grid_hw
    targets = torch.zeros(num_images, h * w, device=boxes.device)
    if len(boxes):
        cells = inside_cells(boxes, grid_hw).float()  # [O, P]
        owner = image_index[batch["object_batch"].to(boxes.device)]
        targets.index_add_(0, owner, cells)
    known = torch.zeros(num_images, dtype=torch.bool, device=boxes.device)
    known[image_index[batch["scene_known"].to(boxes.device)]] = True
    return targets.clamp(max=1.0), known


def objectness_loss(logits: Tensor, batch: dict[str, Any], grid_hw) -> Tensor | None:
    """Mean binary cross entropy of ``logits [U, P]`` over the cells of the images that
    list their objects; None when no image does."""
    targets, known = objectness_targets(batch, len(logits), grid_hw)
    if not bool(known.any()):
        return None
    known = known.to(logits.device)
    return F.binary_cross_entropy_with_logits(
        logits[known].float(), targets.to(logits.device)[known]
    )


def cell_box_loss(cells: Tensor, batch: dict[str, Any], grid_hw, box: nn.Module) -> dict | None:
    """``box``'s L1 + GIoU (no attention term) of the per-cell boxes ``cells [U, P, 4]`` against
    ``cell_box_targets`` on the cells that lie on an annotated object, in the images whose
    rows list their scene's objects; None when no such cell. Each image weighs the same
    (the mean over its cells, then over images), so a batch split over processes with as
    many images each gives the same gradient as the whole batch in one."""
    image_index = batch["image_index"].to(cells.device)
    owner = image_index[batch["object_batch"].to(cells.device)]
    target, assigned = cell_box_targets(
        batch["object_boxes"].to(cells.device).float(), owner, len(cells), grid_hw
    )
    known = torch.zeros(len(cells), dtype=torch.bool, device=cells.device)
    known[image_index[batch["scene_known"].to(cells.device)]] = True
    assigned &= known[:, None]
    images = assigned.any(-1)
    if not bool(images.any()):
        return None
    weight = assigned.float() / assigned.sum(-1, keepdim=True).clamp(min=1) / images.sum()
    return box(cells[assigned], target[assigned], weight=weight[assigned])
