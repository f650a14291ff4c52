"""`make demo`: the main job.

Until the training pipeline lands, the demo builds VRP-SAM (ResNet-50 + tiny SAM, random weights,
no file read), runs one 1-shot training step on a drawn episode and one prediction, and prints what
it did. Numbers from random weights mean nothing about segmentation quality.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from vrpsam import build_vrp_sam
from vrpsam.losses import bce_dice_loss

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def drawn_scene(
    size: int, centre: tuple[int, int], radius: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy background with one red disc: (3, S, S) normalised image and (S, S) mask."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.2, 0.6, size=(3, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    image[:, disc] = np.array([0.9, 0.1, 0.1], dtype=np.float32)[:, None]
    tensor = (torch.from_numpy(image) - IMAGENET_MEAN) / IMAGENET_STD
    return tensor, torch.from_numpy(disc.astype(np.int64))


def main() -> None:
    torch.manual_seed(0)
    size = 512
    start = time.perf_counter()
    model = build_vrp_sam(backbone="resnet50", sam="tiny")
    built = time.perf_counter() - start
    learnable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    print(f"built VRP-SAM (resnet50 + tiny SAM, random weights) in {built:.1f}s")
    print(f"  learnable parameters (VRP encoder): {learnable:,}   frozen: {frozen:,}")

    reference, reference_mask = drawn_scene(size, (180, 200), 90, seed=1)
    target, target_mask = drawn_scene(size, (320, 300), 110, seed=2)
    batch = (target[None], reference[None, None], reference_mask[None, None].float())

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    start = time.perf_counter()
    logits = model(*batch)
    losses = bce_dice_loss(logits, target_mask[None])
    losses["loss"].backward()
    optimizer.step()
    step = time.perf_counter() - start
    print(
        f"one 1-shot training step at {size}x{size}: {step:.2f}s, loss {losses['loss'].item():.3f}"
    )

    model.eval()
    with torch.no_grad():
        prediction = model(*batch)[0, 0] > 0
    inter = (prediction & (target_mask == 1)).sum().item()
    union = (prediction | (target_mask == 1)).sum().item()
    print(
        f"prediction: {int(prediction.sum())} foreground pixels; IoU with the drawn disc "
        f"{inter / max(union, 1):.3f} (random weights: not a result)"
    )


if __name__ == "__main__":
    main()
