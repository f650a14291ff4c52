"""Semantic-segmentation scores of ``task=semantic``: a confusion matrix over every class plus
background, and how often a class is claimed in an image that lacks it.

The states are int64 sums (or, for the threshold's validation pairs, concatenations sorted
before use), reduced across processes before ``compute()``: a sharded run equals one process.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from vrpsam.data.base import IGNORE_INDEX


class ConfusionMatrix(Metric):
    """(C + 1) × (C + 1) pixel counts, rows the ground truth, columns the prediction; index 0
    is background, index ``i`` the class ``class_ids[i - 1]``. Pixels labelled 255 are ignored.

    Args:
        class_ids: the dataset's class ids scored (every class of the all-classes form, a
            fold's novel classes in the N-way form).
    """

    full_state_update = False

    def __init__(self, *, class_ids: Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_ids = [int(c) for c in class_ids]
        if 0 in self.class_ids or IGNORE_INDEX in self.class_ids:
            raise ValueError(f"class ids may not be 0 or {IGNORE_INDEX}: {self.class_ids}")
        lookup = torch.full((256,), -1, dtype=torch.int64)
        lookup[0] = 0
        lookup[self.class_ids] = torch.arange(1, len(self.class_ids) + 1)
        self.lookup = lookup
        n = len(self.class_ids) + 1
        self.add_state("matrix", torch.zeros(n, n, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add one image: (H, W) predicted and true label maps of dataset ids (0 background;
        255 in ``target`` ignored)."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} vs target {tuple(target.shape)}"
            )
        target, prediction = target.cpu().long(), prediction.cpu().long()
        keep = target != IGNORE_INDEX
        truth, guess = self.lookup[target[keep]], self.lookup[prediction[keep].clamp(0, 255)]
        if (truth < 0).any() or (guess < 0).any():
            raise ValueError(f"labels outside background and the scored classes {self.class_ids}")
        n = len(self.class_ids) + 1
        counts = torch.bincount(truth * n + guess, minlength=n * n).reshape(n, n)
        self.matrix += counts.to(self.matrix.device)

    def compute(self) -> dict[str, torch.Tensor]:
        """``iou`` (C + 1,) float64, NaN where a class was never present nor predicted;
        ``miou`` the mean of the others; ``pixel_accuracy``; ``matrix``."""
        return scores_from_confusion(self.matrix)


def scores_from_confusion(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
    """IoU per row class (NaN for an empty union), their mean, and pixel accuracy of a (K, K)
    confusion matrix (rows truth, columns prediction)."""
    matrix = matrix.double()
    hits = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - hits
    iou = torch.where(union > 0, hits / union.clamp_min(1), torch.full_like(hits, float("nan")))
    seen = ~torch.isnan(iou)
    miou = iou[seen].mean() if seen.any() else torch.tensor(0.0, dtype=torch.float64)
    accuracy = hits.sum() / matrix.sum().clamp_min(1)
    return {"iou": iou, "miou": miou, "pixel_accuracy": accuracy, "matrix": matrix.long()}


class PresenceCounts(Metric):
    """Whether each scored class shows in each image's prediction, against the truth, as
    (image, class) pair counts: true and false positives and negatives. ``compute()`` gives
    accuracy, the false-positive rate (claimed among the pairs whose truth lacks the class),
    precision and recall, as fractions (None where undefined)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # tp, fp, fn, tn
        self.add_state("counts", torch.zeros(4, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, predicted: torch.Tensor, present: torch.Tensor) -> None:
        """Add (P,) bool flags of P (image, class) pairs: claimed, and truly present."""
        predicted, present = predicted.bool().cpu(), present.bool().cpu()
        pairs = [(predicted, present), (predicted, ~present), (~predicted, present),
                 (~predicted, ~present)]  # fmt: skip
        row = torch.stack([(a & b).sum() for a, b in pairs])
        self.counts += row.to(self.counts.device)

    def compute(self) -> dict[str, float | int | None]:
        tp, fp, fn, tn = (int(v) for v in self.counts)
        ratio = lambda a, b: a / b if b else None  # noqa: E731
        return {
            "pairs": tp + fp + fn + tn,
            "true_positives": tp,
            "false_positives": fp,
            "false_negatives": fn,
            "true_negatives": tn,
            "accuracy": ratio(tp + tn, tp + fp + fn + tn),
            "false_positive_rate": ratio(fp, fp + tn),
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
        }


class PresencePairs(Metric):
    """Every (score, truly present) pair of the validation images, gathered from all
    processes, for :func:`~vrpsam.baselines.multiclass.choose_threshold`."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", [], dist_reduce_fx="cat")
        self.add_state("present", [], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, present: torch.Tensor) -> None:
        """Add (P,) presence scores and (P,) bool truths."""
        self.scores.append(scores.detach().double().flatten())
        # Float: bool tensors are not gathered by every backend.
        self.present.append(present.double().flatten().to(scores.device))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All pairs: (P,) float64 scores and (P,) bool truths (any order)."""
        if isinstance(self.scores, list) and not self.scores:
            return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool)
        return dim_zero_cat(self.scores).cpu(), dim_zero_cat(self.present).cpu() > 0
