"""The DAVIS protocol's region similarity J and boundary F-measure, and their sharded sums.

As the davis2017-evaluation code (``davis2017/metrics.py``, ``davis2017/evaluation.py``) computes
them, semi-supervised task:

* J: the IoU of an object's predicted and true masks in one frame; 1 when both are empty.
* F: boundaries are one pixel wide (``seg2bmap``: a pixel differs from its right, lower or
  lower-right neighbour); each is dilated by a disk of radius ``ceil(bound_th · diagonal)``
  pixels (``bound_th = 0.008``); precision = predicted boundary pixels within the true one's
  dilation, recall likewise; F = 2PR / (P + R). Both boundaries empty: F = 1; one empty: F = 0.
* Frames scored: every frame but the first (the reference) and the last (``[1:-1]``).
* Void (255) pixels of DAVIS-2017 annotations count as background: the evaluation code sets them
  to 0 when it reads the masks, so its void mask is empty by the time it scores.
* Per object: the mean over its scored frames; J-mean (F-mean) is the mean over every object of
  every sequence, J&F their mean.

:class:`DavisScores` keeps per (sequence, object) sums of J and F and frame counts in fixed-size
tensors reduced by summation, so a sharded evaluation equals a one-process one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torchmetrics import Metric

from vrpsam.baselines.multiclass import merge_labels

BOUND_TH = 0.008
MAX_OBJECTS = 256
"""Columns of the per-object states: object ids are palette indices (0..255)."""


def region_similarity(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> float:
    """J: IoU of two (H, W) binary masks; 1.0 when both are empty."""
    pred, gt = _binary(pred), _binary(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} vs ground truth {gt.shape}")
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of an (H, W) binary mask, offset half a pixel towards the origin:
    pixels that differ from their right, lower or lower-right neighbour (the last row compares
    to its right neighbour only, the last column to its lower one)."""
    seg = _binary(mask)
    right, below, diagonal = (np.zeros_like(seg) for _ in range(3))
    right[:, :-1] = seg[:, 1:]
    below[:-1, :] = seg[1:, :]
    diagonal[:-1, :-1] = seg[1:, 1:]
    edge = (seg ^ right) | (seg ^ below) | (seg ^ diagonal)
    edge[-1, :] = seg[-1, :] ^ right[-1, :]
    edge[:, -1] = seg[:, -1] ^ below[:, -1]
    edge[-1, -1] = False
    return edge


def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) ``uint8`` disk: offsets with x² + y² ≤ r² (skimage's ``disk``)."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_tolerance(shape: Sequence[int], bound_th: float = BOUND_TH) -> int:
    """The dilation radius in pixels: ``bound_th`` itself when ≥ 1, else a fraction of the
    image diagonal, rounded up."""
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(*shape[:2]))


def boundary_f_measure(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, bound_th: float = BOUND_TH
) -> float:
    """F: the boundary F-measure of two (H, W) binary masks (see the module doc)."""
    pred, gt = _binary(pred), _binary(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} vs ground truth {gt.shape}")
    kernel = disk(boundary_tolerance(pred.shape, bound_th))
    pred_edge, gt_edge = seg2bmap(pred), seg2bmap(gt)
    n_pred, n_gt = int(pred_edge.sum()), int(gt_edge.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0  # precision or recall is 0 (the other 1)
    pred_near = cv2.dilate(pred_edge.astype(np.uint8), kernel) > 0
    gt_near = cv2.dilate(gt_edge.astype(np.uint8), kernel) > 0
    precision = (pred_edge & gt_near).sum() / n_pred
    recall = (gt_edge & pred_near).sum() / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def merge_objects(logits: torch.Tensor, object_ids: Sequence[int]) -> torch.Tensor:
    """One label map from per-object mask logits: a pixel takes the object with the highest
    logit among those with a positive one; background (0) where none is positive.

    Args:
        logits: (O, N, H, W) or (O, H, W) logits, one slice per object.
        object_ids: the O object ids, in the order of ``logits``.

    Returns:
        (N, H, W) or (H, W) ``uint8`` label map.
    """
    return merge_labels(logits, object_ids, dtype=torch.uint8)


def _binary(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask).astype(bool)


class DavisScores(Metric):
    """Sums of J and F and counts of scored frames per (sequence, object), reduced by summation.

    Args:
        num_sequences: the sequences of the split (rows, by their index in the list).

    ``update`` adds one frame of one object; ``mark`` records an object of a sequence (so that an
    object without scored frames is still known). ``compute`` returns ``j_mean``, ``f_mean``,
    ``jf_mean`` (fractions, means over every object with scored frames) and the per-object means
    ``j`` and ``f`` ((num_sequences, 256), NaN where not scored).
    """

    full_state_update = False

    def __init__(self, *, num_sequences: int, **kwargs) -> None:
        super().__init__(**kwargs)
        shape, f64 = (num_sequences, MAX_OBJECTS), torch.float64
        self.add_state("j_sum", torch.zeros(shape, dtype=f64), dist_reduce_fx="sum")
        self.add_state("f_sum", torch.zeros(shape, dtype=f64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(shape, dtype=f64), dist_reduce_fx="sum")
        self.add_state("objects", torch.zeros(shape, dtype=f64), dist_reduce_fx="sum")
        self.add_state("frames", torch.zeros(num_sequences, dtype=f64), dist_reduce_fx="sum")

    def mark(self, sequence: int, object_ids: Sequence[int], scored_frames: int) -> None:
        """Record a sequence's objects and how many of its frames are scored."""
        self.objects[sequence, list(object_ids)] = 1.0
        self.frames[sequence] = float(scored_frames)

    def update(self, sequence: int, object_id: int, j: float, f: float) -> None:
        self.j_sum[sequence, object_id] += j
        self.f_sum[sequence, object_id] += f
        self.counts[sequence, object_id] += 1

    def compute(self) -> dict[str, torch.Tensor]:
        scored = self.counts > 0
        j = torch.full_like(self.j_sum, float("nan"))
        f = torch.full_like(self.f_sum, float("nan"))
        j[scored] = self.j_sum[scored] / self.counts[scored]
        f[scored] = self.f_sum[scored] / self.counts[scored]
        zero = torch.tensor(0.0, dtype=torch.float64, device=j.device)
        j_mean = j[scored].mean() if scored.any() else zero
        f_mean = f[scored].mean() if scored.any() else zero
        return {
            "j_mean": j_mean,
            "f_mean": f_mean,
            "jf_mean": (j_mean + f_mean) / 2,
            "j": j,
            "f": f,
            "objects": self.objects,
            "frames": self.frames,
        }
