"""Box loss for the spatial decoder: L1 + (1 - GIoU), plus an optional attention-mass term."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scalar.core.boxes import aligned_giou
from scalar.model.spatial import cell_centres


class BoxLoss(nn.Module):
    """``l1_weight * L1 + giou_weight * (1 - GIoU)`` on aligned ``[N, 4]`` xyxy boxes in [0, 1].

    ``box_l1`` is the sum of the four absolute coordinate errors averaged over boxes
    (the DETR convention); ``box_giou`` is ``1 - GIoU`` averaged over boxes. With
    ``N = 0`` every term is a zero connected to ``pred``. ``weight [N]`` (summing to 1)
    replaces the mean over boxes by that weighted sum in ``box_l1`` and ``box_giou``. Returns
    ``{'box_l1', 'box_giou', 'loss'}``.

    ``attn_weight`` > 0 adds ``box_attn``: given the decoder's soft-argmax weights over the
    patch grid (``attn [N, h*w]``), ``-log`` of the attention mass on the cells whose
    centres lie inside the target box (the cell holding the box centre when none does).
    Regressing the soft-argmax centre alone gives the grid logits a weak, indirect
    gradient; this term supervises them directly, like a heat-map loss.
    """

    def __init__(self, l1_weight: float = 5.0, giou_weight: float = 2.0, attn_weight: float = 0.0):
        super().__init__()
        self.l1_weight, self.giou_weight = l1_weight, giou_weight
        self.attn_weight = float(attn_weight)

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        attn: Tensor | None = None,
        grid_hw=None,
        weight: Tensor | None = None,
    ) -> dict[str, Tensor]:
        if pred.shape != target.shape or pred.shape[-1] != 4:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [N, 4]"
            )
        if len(pred) == 0:
            zero = pred.sum() * 0.0
            return {"box_l1": zero, "box_giou": zero, "loss": zero}
        pred, target = pred.float(), target.float()
        l1 = (pred - target).abs().sum(-1)
        giou = 1 - aligned_giou(pred, target)
        if weight is None:
            l1, giou = l1.mean(), giou.mean()
        else:
            l1, giou = (l1 * weight).sum(), (giou * weight).sum()
        loss = self.l1_weight * l1 + self.giou_weight * giou
        out = {"box_l1": l1, "box_giou": giou}
        if self.attn_weight and attn is not None and grid_hw is not None:
            out["box_attn"] = attention_mass_loss(attn.float(), target, grid_hw)
            loss = loss + self.attn_weight * out["box_attn"]
        out["loss"] = loss
        return out


def inside_cells(target: Tensor, grid_hw) -> Tensor:
    """``[N, h*w]`` bool: cells whose centre lies inside each target box (at least one:
    the cell holding the box centre)."""
    h, w = grid_hw
    c = cell_centres(grid_hw, target.device, target.dtype)  # [P, 2]
    x, y = c[:, 0][None], c[:, 1][None]
    inside = (x >= target[:, 0:1]) & (x <= target[:, 2:3]) & (y >= target[:, 1:2])
    inside &= y <= target[:, 3:4]
    cx = ((target[:, 0] + target[:, 2]) / 2 * w).long().clamp(0, w - 1)
    cy = ((target[:, 1] + target[:, 3]) / 2 * h).long().clamp(0, h - 1)
    centre = torch.zeros_like(inside)
    centre[torch.arange(len(target), device=target.device), cy * w + cx] = True
    return torch.where(inside.any(-1, keepdim=True), inside, centre)


def attention_mass_loss(attn: Tensor, target: Tensor, grid_hw) -> Tensor:
    """Mean over boxes of ``-log(sum of attn over the target's cells)``."""
    mass = (attn * inside_cells(target, grid_hw)).sum(-1)
    return -torch.log(mass.clamp(min=1e-6)).mean()


def cell_box_targets(
    object_boxes: Tensor, owner: Tensor, num_images: int, grid_hw
) -> tuple[Tensor, Tensor]:
    """``(targets [U, h*w, 4], assigned [U, h*w] bool)``: the box each cell should predict,
    the smallest of ``object_boxes [O, 4]`` (of image ``owner [O]``) whose ``inside_cells``
    it is, and which cells lie on any object (the others have no target)."""
    cells = inside_cells(object_boxes, grid_hw)  # [O, P]
    area = (object_boxes[:, 2] - object_boxes[:, 0]) * (object_boxes[:, 3] - object_boxes[:, 1])
    p = cells.shape[1]
    targets = object_boxes.new_zeros(num_images, p, 4)
    assigned = torch.zeros(num_images, p, dtype=torch.bool, device=object_boxes.device)
    for u in owner.unique().tolist():
        mine = (owner == u).nonzero(as_tuple=True)[0]
        cost = torch.where(
            cells[mine], area[mine, None], torch.full_like(cells[mine], 2.0, dtype=area.dtype)
        )
        best = cost.argmin(0)  # [P]: the smallest object on each cell
        targets[u] = object_boxes[mine[best]]
        assigned[u] = cells[mine].any(0)
    return targets, assigned
