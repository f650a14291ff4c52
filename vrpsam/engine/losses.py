"""VRP-SAM's training objective: BCE-with-logits (mean) + Dice (+1 smoothing, summed / batch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int | None = 255
) -> dict[str, torch.Tensor]:
    """BCE + Dice on mask logits.

    Args:
        logits: (B, 1, H, W) or (B, H, W) mask logits.
        target: (B, H, W) integer mask: 1 = foreground, 0 = background, ``ignore_index`` = ignored.
        ignore_index: label excluded from both terms (PASCAL boundaries). None reproduces the
            official code, where such pixels count as background.

    Returns:
        dict with ``loss`` (the sum), ``bce`` and ``dice``; scalars.
    """
    if logits.dim() == 4:
        logits = logits.squeeze(1)
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    if ignore_index is None:
        valid = torch.ones_like(logits)
        positives = (target == 1).to(logits.dtype)
    else:
        valid = (target != ignore_index).to(logits.dtype)
        positives = (target == 1).to(logits.dtype) * valid
    bce_map = F.binary_cross_entropy_with_logits(logits, positives, reduction="none")
    bce = (bce_map * valid).sum() / valid.sum().clamp_min(1.0)
    probs = torch.sigmoid(logits) * valid
    numerator = 2 * (probs * positives).flatten(1).sum(1)
    denominator = probs.flatten(1).sum(1) + positives.flatten(1).sum(1)
    dice = (1 - (numerator + 1) / (denominator + 1)).sum() / logits.shape[0]
    return {"loss": bce + dice, "bce": bce, "dice": dice}
