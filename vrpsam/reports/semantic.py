"""Reports of a many-classes evaluation (``task=semantic``): the table, the normalised confusion
matrix and test images with their colour label maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vrpsam.data.base import IGNORE_INDEX
from vrpsam.data.synthetic import voc_palette
from vrpsam.reports.figures import _pyplot
from vrpsam.reports.tables import random_weights_warning


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def semantic_markdown(result: dict) -> str:
    """The evaluation as markdown: mIoU, pixel accuracy and presence, then IoU per class."""
    presence = result["presence"]
    form = (f"{result['ways']}-way episodes of fold {result['fold']}"
            if result["form"] == "nway" else "every class at once")  # fmt: skip
    lines = [
        f"# {result['method']} on {result['dataset']}: {form}",
        "",
        *random_weights_warning(result),
        f"{result['references_per_class']} {result['annotation']} reference(s) per class from "
        f"{result['references_from']}, {result['images']} test images, {result['classes']} "
        f"classes with background, {result['seconds_per_image']:.3f} s per image. Presence "
        f"threshold {presence['threshold']:.3f} (chosen on {presence['chosen_on']}).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| mIoU (%) | {result['miou']:.1f} |",
        f"| pixel accuracy (%) | {result['pixel_accuracy']:.1f} |",
        f"| presence accuracy (%) | {_cell(presence.get('accuracy'))} |",
        f"| presence false-positive rate (%) | {_cell(presence.get('false_positive_rate'))} |",
        f"| presence AUC on the threshold's validation pairs (%) | "
        f"{_cell(presence.get('val_auc'))} |",
        "",
        "| class | IoU (%) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_cell(iou)} |" for name, iou in result["per_class_iou"].items()]
    return "\n".join(lines) + "\n"


def normalise_rows(matrix: Sequence[Sequence[int]]) -> np.ndarray:
    """Each row (a true class) divided by its pixel count; rows without pixels stay 0."""
    counts = np.asarray(matrix, dtype=np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def plot_confusion(matrix: Sequence[Sequence[int]], names: Sequence[str], path: str | Path) -> None:
    """The row-normalised confusion matrix (true class down, predicted across) with the class
    names on both axes, written to ``path`` as PNG."""
    plt = _pyplot()
    shares = normalise_rows(matrix)
    n = len(names)
    side = min(max(4.0, 0.32 * n + 2), 28.0)
    font = 8 if n <= 30 else 5
    fig, ax = plt.subplots(figsize=(side + 1, side), dpi=90)
    shown = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("confusion matrix (each true class's pixels, normalised)")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def colour_map(label: np.ndarray) -> np.ndarray:
    """(H, W) class ids → (H, W, 3) float VOC-palette colours (ignored pixels white)."""
    palette = np.asarray(voc_palette(), dtype=np.float64).reshape(-1, 3) / 255
    palette[IGNORE_INDEX] = 1.0
    return palette[np.asarray(label, dtype=np.int64)]


def plot_label_overlays(
    images: Sequence[dict], names: Mapping[int, str], path: str | Path, alpha: float = 0.6
) -> None:
    """One row per test image: the image, the ground truth and the prediction as colour label
    maps over it, and a legend of the classes shown.

    Args:
        images: dicts with ``target_id``, ``image`` (H, W, 3) ``uint8``, ``truth`` and
            ``prediction`` (H, W) class ids.
        names: class id → name.
        path: the PNG to write.
    """
    from matplotlib.patches import Patch

    plt = _pyplot()
    rows = max(len(images), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows + 0.8), dpi=90, squeeze=False)
    used: set[int] = set()
    for row, item in enumerate(images):
        rgb = item["image"].astype(np.float64) / 255
        panels = [(rgb, item["target_id"])]
        for key, title in (("truth", "ground truth"), ("prediction", "prediction")):
            label = np.asarray(item[key])
            blend = np.where((label > 0)[..., None], (1 - alpha) * rgb + alpha * colour_map(label),
                             rgb)  # fmt: skip
            panels.append((blend, title))
            used |= {int(v) for v in np.unique(label) if 0 < v < IGNORE_INDEX}
        for col, (image, title) in enumerate(panels):
            axes[row, col].imshow(image)
            axes[row, col].set_title(title, fontsize=9)
            axes[row, col].axis("off")
    palette = np.asarray(voc_palette(), dtype=np.float64).reshape(-1, 3) / 255
    handles = [Patch(color=palette[c], label=names.get(c, str(c))) for c in sorted(used)]
    if handles:
        fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), fontsize=8,
                   frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.8 / (3 * rows + 0.8)))
    fig.savefig(path, format="png")
    plt.close(fig)
