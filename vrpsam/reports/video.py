"""Reports of a video evaluation: the J/F table and the strip of frames per sequence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vrpsam.data.synthetic import voc_palette
from vrpsam.reports.figures import _pyplot, outline
from vrpsam.reports.tables import random_weights_warning


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def video_markdown(result: dict) -> str:
    """The evaluation as a small markdown report: J&F, J, F, then one row per sequence."""
    lines = [
        f"# {result.get('method', 'vrpsam')} on {result['dataset']} {result.get('split', 'val')}",
        "",
        *random_weights_warning(result),
        f"One-shot video object segmentation: the first frame's {result['annotation']} "
        f"reference per object, {result['sequences']} sequences, {result['objects']} objects, "
        f"{result['frames_scored']} frames scored (the DAVIS protocol: every frame but the first "
        f"and the last), {result.get('seconds_per_frame', 0):.3f} s per frame.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| J&F (%) | {result['jf_mean']:.1f} |",
        f"| J mean (%) | {result['j_mean']:.1f} |",
        f"| F mean (%) | {result['f_mean']:.1f} |",
        "",
        "| sequence | objects | frames | J&F (%) | J (%) | F (%) |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["per_sequence"]:
        lines.append(
            f"| {row['sequence']} | {row['objects']} | {row['frames']} | "
            f"{_cell(row['jf_mean'])} | {_cell(row['j_mean'])} | {_cell(row['f_mean'])} |"
        )
    return "\n".join(lines) + "\n"


def colour_labels(image: np.ndarray, label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) ``uint8`` ``image`` with each object id of ``label`` (H, W) tinted in its DAVIS
    palette colour and outlined; returns a float image in [0, 1]."""
    palette = np.asarray(voc_palette(), dtype=np.float64).reshape(-1, 3) / 255
    out = image.astype(np.float64) / 255
    for object_id in (int(i) for i in np.unique(label) if i):
        mask = label == object_id
        colour = palette[object_id]
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
        out = outline(out, mask, colour)
    return out


def plot_video_strips(
    strips: Sequence[dict], path: str | Path, scores: dict[str, float | None] | None = None
) -> None:
    """One row per sequence: the reference frame with its masks, then target frames with the
    merged predicted label map, each object in its DAVIS palette colour.

    Args:
        strips: dicts with ``sequence``, ``reference`` (H, W, 3) ``uint8``, ``reference_label``
            (H, W) ids and ``frames``: a list of ``{"stem", "image", "label"}``.
        path: the PNG to write.
        scores: J&F (percent) by sequence name, shown in the row titles.
    """
    plt = _pyplot()
    rows = max(len(strips), 1)
    cols = max([1 + len(s["frames"]) for s in strips] or [1])
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 1.9 * rows + 0.3), dpi=90,
                             squeeze=False)  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for row, strip in enumerate(strips):
        score = (scores or {}).get(strip["sequence"])
        title = strip["sequence"] + ("" if score is None else f" (J&F {score:.1f}%)")
        axes[row, 0].imshow(colour_labels(strip["reference"], strip["reference_label"]))
        axes[row, 0].set_title(f"{title}\nreference {strip.get('reference_stem', '')}",
                               fontsize=8)  # fmt: skip
        for col, frame in enumerate(strip["frames"], start=1):
            axes[row, col].imshow(colour_labels(frame["image"], frame["label"]))
            axes[row, col].set_title(f"prediction {frame['stem']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
