"""Forward+backward time of one 1-shot VRP-SAM training episode (random weights) per SAM variant.

Usage: python scripts/time_episode.py [--sam tiny vit_b] [--backbone resnet50] [--repeats 3]
Prints the median of the repeats after one warm-up; the SAM image encoder runs without gradient.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vrpsam import build_vrp_sam
from vrpsam.engine.losses import bce_dice_loss


def time_episode(backbone: str, sam: str, repeats: int, size: int = 512) -> float:
    model = build_vrp_sam(backbone=backbone, sam=sam).train()
    targets = torch.randn(1, 3, size, size)
    references = torch.randn(1, 1, 3, size, size)
    masks = torch.zeros(1, 1, size, size)
    masks[..., 128:384, 128:384] = 1
    target_masks = torch.zeros(1, size, size, dtype=torch.long)
    target_masks[:, 100:300, 200:400] = 1
    times = []
    for _ in range(repeats + 1):
        model.zero_grad()
        start = time.perf_counter()
        bce_dice_loss(model(targets, references, masks), target_masks)["loss"].backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", nargs="+", default=["tiny", "vit_b"])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for sam in args.sam:
        seconds = time_episode(args.backbone, sam, args.repeats)
        print(f"{args.backbone} + SAM {sam}: forward+backward of one 1-shot episode {seconds:.2f}s")


if __name__ == "__main__":
    main()
