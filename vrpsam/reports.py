"""Figures and tables for people: training curves, evaluation tables, overlay grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vrpsam.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    return plt


def plot_training_curve(
    losses: Sequence[tuple[int, float]], validation: Sequence[dict], path: str | Path
) -> None:
    """Training loss (left axis) and validation mIoU (right axis) against the optimizer step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps, values = zip(*losses, strict=True) if losses else ((), ())
    ax.plot(steps, values, color="tab:blue", alpha=0.35, label="train loss")
    if len(values) >= 5:
        window = max(len(values) // 20, 3)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", label="train loss (smoothed)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (BCE + Dice)")
    if validation:
        twin = ax.twinx()
        twin.plot([v["step"] for v in validation], [v["miou"] for v in validation], "o-",
                  color="tab:red", label="val mIoU")  # fmt: skip
        twin.set_ylabel("val mIoU (%)")
        twin.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.set_title("VRP-SAM training")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def denormalise(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) ImageNet-normalised tensor → (H, W, 3) float image in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.float() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def tint(
    image: np.ndarray, mask: np.ndarray, color=(1.0, 0.1, 0.1), alpha: float = 0.6
) -> np.ndarray:
    """Grey ``image`` (H, W, 3) in [0, 1] with ``color`` blended in where ``mask`` (H, W) is set;
    greying first keeps the mask readable on colourful images."""
    grey = image.mean(axis=2, keepdims=True).repeat(3, axis=2) * 0.8 + 0.1
    sel = mask.astype(bool)
    grey[sel] = (1 - alpha) * grey[sel] + alpha * np.asarray(color)
    return grey


def plot_overlays(
    episodes: Sequence[dict], path: str | Path, class_names: dict | None = None
) -> None:
    """One row per episode: reference + annotation, target + ground truth, target + prediction."""
    plt = _pyplot()
    rows = max(len(episodes), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), dpi=80, squeeze=False)
    for row, episode in enumerate(episodes):
        target = denormalise(episode["target_image"])
        truth = (episode["target_mask"] == 1).numpy()
        panels = [
            (
                tint(
                    denormalise(episode["reference_image"]),
                    episode["reference_mask"].numpy(),
                    (0.1, 0.9, 0.1),
                ),
                "reference + annotation",
            ),
            (tint(target, truth, (0.1, 0.4, 1.0)), "target + ground truth"),
            (tint(target, episode["prediction"].numpy()), "prediction"),
        ]
        name = (class_names or {}).get(episode["class_id"], str(episode["class_id"]))
        for col, (image, title) in enumerate(panels):
            axes[row, col].imshow(image)
            axes[row, col].set_title(f"{title}\n{name}" if col == 0 else title, fontsize=8)
            axes[row, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def eval_markdown(result: dict, class_names: dict | None = None) -> str:
    """The evaluation as a small markdown report: the summary line and per-class IoU."""
    lines = [
        f"# {result.get('method', 'vrpsam')} on {result['dataset']} fold {result['fold']}",
        "",
        f"{result['shot']}-shot, {result['annotation']} references, {result['episodes']} episodes "
        f"per seed, seeds {result['seeds']}, scored at "
        f"{'original size' if result.get('score_original_size', True) else 'network size'}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| mIoU (%) | {format_mean_std(result['miou'], result.get('miou_std'))} |",
        f"| FB-IoU (%) | {format_mean_std(result['fbiou'], result.get('fbiou_std'))} |",
        "",
        "| class | IoU (%) |",
        "|---|---|",
    ]
    for class_id, iou in zip(result["class_ids"], result["per_class_iou"], strict=True):
        name = (class_names or {}).get(class_id, str(class_id))
        lines.append(f"| {name} | {'—' if iou is None else f'{iou:.1f}'} |")
    return "\n".join(lines) + "\n"


def format_mean_std(mean: float, std: float | None) -> str:
    return f"{mean:.1f}" if not std else f"{mean:.1f} ± {std:.1f}"
