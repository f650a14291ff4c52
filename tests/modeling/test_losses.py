import pytest
import torch
import torch.nn.functional as F

from vrpsam.engine.losses import bce_dice_loss


def test_loss_is_bce_mean_plus_dice_with_plus_one_smoothing():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    target = torch.tensor([[[1, 0], [1, 0]]])
    out = bce_dice_loss(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    p = torch.sigmoid(logits[:, 0])
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    assert out["bce"] == pytest.approx(bce.item(), abs=1e-6)
    assert out["dice"] == pytest.approx(dice.item(), abs=1e-6)
    assert out["loss"] == pytest.approx((bce + dice).item(), abs=1e-6)


def test_ignored_pixels_do_not_change_the_loss():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    target[0, 3, 3] = 255
    logits = torch.randn(1, 1, 4, 4)
    changed = logits.clone()
    changed[0, 0, 3, 3] = 50.0  # a confident "foreground" on an ignored pixel
    assert bce_dice_loss(logits, target)["loss"] == pytest.approx(
        bce_dice_loss(changed, target)["loss"].item()
    )


def test_official_mode_counts_ignored_pixels_as_background():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 1
    target[0, 3, 3] = 255
    logits = torch.zeros(1, 1, 4, 4)
    logits[0, 0, 3, 3] = 5.0
    official = bce_dice_loss(logits, target, ignore_index=None)["loss"]
    as_background = bce_dice_loss(logits, torch.where(target == 255, 0, target), ignore_index=None)[
        "loss"
    ]
    assert official == pytest.approx(as_background.item())
    assert official > bce_dice_loss(logits, target)["loss"]
