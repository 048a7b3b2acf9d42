"""Box regression loss for the spatial decoder: L1 + (1 - GIoU)."""

from __future__ import annotations

from torch import Tensor, nn

from scalar.model.boxes import aligned_giou


class BoxLoss(nn.Module):
    """``l1_weight * L1 + giou_weight * (1 - GIoU)`` on aligned ``[N, 4]`` xyxy boxes in [0, 1].

    ``box_l1`` is the sum of the four absolute coordinate errors averaged over boxes
    (the DETR convention); ``box_giou`` is ``1 - GIoU`` averaged over boxes. With
    ``N = 0`` every term is a zero connected to ``pred``. Returns
    ``{'box_l1', 'box_giou', 'loss'}``.
    """

    def __init__(self, l1_weight: float = 5.0, giou_weight: float = 2.0):
        super().__init__()
        self.l1_weight, self.giou_weight = l1_weight, giou_weight

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        if pred.shape != target.shape or pred.shape[-1] != 4:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [N, 4]"
            )
        if len(pred) == 0:
            zero = pred.sum() * 0.0
            return {"box_l1": zero, "box_giou": zero, "loss": zero}
        pred, target = pred.float(), target.float()
        l1 = (pred - target).abs().sum(-1).mean()
        giou = (1 - aligned_giou(pred, target)).mean()
        loss = self.l1_weight * l1 + self.giou_weight * giou
        return {"box_l1": l1, "box_giou": giou, "loss": loss}
