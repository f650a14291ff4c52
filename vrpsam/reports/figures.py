"""Figures for people: training curves and overlay grids."""

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


# Overlay colours (RGB in [0, 1]): annotation, ground truth, prediction.
ANNOTATION_COLOR = (0.1, 0.85, 0.2)
TRUTH_COLOR = (0.15, 0.45, 1.0)
PREDICTION_COLOR = (1.0, 0.15, 0.1)


def tint(image: np.ndarray, mask: np.ndarray, color, alpha: float = 0.35) -> np.ndarray:
    """``image`` (H, W, 3) in [0, 1] in its own colours, ``color`` blended in where ``mask``
    (H, W) is set: the object's colour and texture stay visible under the tint."""
    out = image.copy()
    sel = mask.astype(bool)
    out[sel] = (1 - alpha) * out[sel] + alpha * np.asarray(color)
    return out


def outline(image: np.ndarray, mask: np.ndarray, color, width: int = 1) -> np.ndarray:
    """``image`` with the boundary of ``mask`` drawn in ``color`` (a band ``width`` px wide)."""
    import cv2

    binary = mask.astype(np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    edge = (cv2.dilate(binary, kernel) > 0) & ~(cv2.erode(binary, kernel) > 0)
    out = image.copy()
    out[edge] = np.asarray(color)
    return out


def plot_overlays(
    episodes: Sequence[dict], path: str | Path, class_names: dict | None = None
) -> None:
    """Write :func:`overlay_figure` of ``episodes`` to ``path`` as PNG."""
    plt = _pyplot()
    fig = overlay_figure(episodes, class_names)
    fig.savefig(path, format="png")
    plt.close(fig)


def overlay_figure(episodes: Sequence[dict], class_names: dict | None = None):
    """One row per episode: the reference with its annotation (green), the target with the
    ground truth outlined (blue), the target with the prediction tinted and outlined (red); each
    row names the class and the episode's IoU, and a legend explains the colours."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    rows = max(len(episodes), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows + 0.6), dpi=90, squeeze=False)
    for row, episode in enumerate(episodes):
        target = denormalise(episode["target_image"])
        truth = (episode["target_mask"] == 1).numpy()
        annotation = episode["reference_mask"].numpy() > 0
        prediction = episode["prediction"].numpy()
        reference = denormalise(episode["reference_image"])
        name = episode.get("class_name") or (class_names or {}).get(
            episode["class_id"], f"class {episode['class_id']}"
        )
        iou = episode.get("iou")
        panels = [
            (outline(tint(reference, annotation, ANNOTATION_COLOR, 0.5), annotation,
                     ANNOTATION_COLOR), f"reference: {name}"),
            (outline(target, truth, TRUTH_COLOR), "target, ground truth"),
            (outline(tint(target, prediction, PREDICTION_COLOR), prediction, PREDICTION_COLOR),
             "prediction" + ("" if iou is None else f", IoU {iou:.1f}%")),
        ]  # fmt: skip
        for col, (image, title) in enumerate(panels):
            axes[row, col].imshow(image)
            axes[row, col].set_title(title, fontsize=9)
            axes[row, col].axis("off")
    handles = [
        Patch(color=ANNOTATION_COLOR, label="reference annotation"),
        Patch(color=TRUTH_COLOR, label="ground truth (outline)"),
        Patch(color=PREDICTION_COLOR, label="prediction"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3 * rows + 0.6)))
    return fig
