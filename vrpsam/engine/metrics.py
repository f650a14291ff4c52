"""Few-shot segmentation metrics the way the literature computes them (hsnet/PFENet convention).

Per class, intersection and union are *summed* over every episode of that class; mIoU is the mean
over classes of sum(I) / sum(U). FB-IoU is the mean of foreground and background IoU from totals
over all episodes. Pixels labelled 255 are ignored. Sums (never averages) are reduced across
processes, so a sharded evaluation equals a single-process one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from vrpsam.data.base import IGNORE_INDEX


def intersection_union(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Foreground and background intersection/union of one episode.

    Args:
        prediction: (H, W) bool or {0, 1}.
        target: (H, W) integer {0, 1, 255}.

    Returns:
        (2, 2) float64 tensor: rows (background, foreground), columns (intersection, union).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} vs target {tuple(target.shape)}")
    valid = target != IGNORE_INDEX
    pred_fg = prediction.bool() & valid
    true_fg = (target == 1) & valid
    pred_bg = ~prediction.bool() & valid
    true_bg = (target == 0) & valid
    out = torch.empty(2, 2, dtype=torch.float64)
    out[0, 0] = (pred_bg & true_bg).sum()
    out[0, 1] = (pred_bg | true_bg).sum()
    out[1, 0] = (pred_fg & true_fg).sum()
    out[1, 1] = (pred_fg | true_fg).sum()
    return out


class FewShotIoU(Metric):
    """mIoU over a fold's classes and FB-IoU, from summed intersections and unions.

    Args:
        class_ids: the classes evaluated (e.g. a fold's novel classes, dataset ids).

    ``compute()`` returns ``miou`` and ``fbiou`` as fractions in [0, 1], ``per_class_iou`` (a
    (C,) tensor, NaN for classes without episodes) and ``episodes``. mIoU averages the classes that
    had at least one episode.
    """

    full_state_update = False

    def __init__(self, *, class_ids: Sequence[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.class_ids = [int(c) for c in class_ids]
        self._index = {c: i for i, c in enumerate(self.class_ids)}
        n = len(self.class_ids)
        f64 = torch.float64
        self.add_state("intersection", torch.zeros(n, dtype=f64), dist_reduce_fx="sum")
        self.add_state("union", torch.zeros(n, dtype=f64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(n, dtype=f64), dist_reduce_fx="sum")
        self.add_state("fb", torch.zeros(2, 2, dtype=f64), dist_reduce_fx="sum")

    def update(
        self,
        predictions: Sequence[torch.Tensor] | torch.Tensor,
        targets: Sequence[torch.Tensor] | torch.Tensor,
        class_ids: Sequence[int] | torch.Tensor,
    ) -> None:
        """Add episodes: predictions and targets as (B, H, W) tensors or lists of (H_i, W_i)."""
        class_ids = [int(c) for c in class_ids]
        if not (len(predictions) == len(targets) == len(class_ids)):
            raise ValueError("predictions, targets and class_ids differ in length")
        for prediction, target, class_id in zip(predictions, targets, class_ids, strict=True):
            if class_id not in self._index:
                raise ValueError(
                    f"class {class_id} is not among the evaluated classes {self.class_ids}"
                )
            iu = intersection_union(prediction.cpu(), target.cpu()).to(self.fb.device)
            i = self._index[class_id]
            self.intersection[i] += iu[1, 0]
            self.union[i] += iu[1, 1]
            self.counts[i] += 1
            self.fb += iu

    def compute(self) -> dict[str, torch.Tensor]:
        seen = self.counts > 0
        per_class = torch.full_like(self.union, float("nan"))
        per_class[seen] = self.intersection[seen] / self.union[seen].clamp_min(1.0)
        miou = per_class[seen].mean() if seen.any() else torch.tensor(0.0, dtype=torch.float64)
        fb = (self.fb[:, 0] / self.fb[:, 1].clamp_min(1.0)).mean()
        return {
            "miou": miou,
            "fbiou": fb,
            "per_class_iou": per_class,
            "episodes": self.counts.sum(),
        }


class OtherClassShare(Metric):
    """The share of predicted foreground that falls on objects of *other* classes (percent when
    multiplied by 100): a prediction that covers every object of the target, whatever the
    reference shows, scores high; a class-specific one near zero. Sums are reduced across
    processes, like :class:`FewShotIoU`."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        f64 = torch.float64
        self.add_state("on_others", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("predicted", torch.zeros((), dtype=f64), dist_reduce_fx="sum")

    def update(self, predictions: Sequence[torch.Tensor], others: Sequence[torch.Tensor]) -> None:
        """Add episodes: (H_i, W_i) predictions and masks of the other classes' objects."""
        for prediction, other in zip(predictions, others, strict=True):
            if prediction.shape != other.shape:
                raise ValueError(f"prediction {tuple(prediction.shape)} vs {tuple(other.shape)}")
            hit = prediction.bool().cpu()
            self.on_others += (hit & other.bool().cpu()).sum()
            self.predicted += hit.sum()

    def compute(self) -> torch.Tensor:
        return self.on_others / self.predicted.clamp_min(1.0)


class FalsePositives(Metric):
    """On negative episodes (the target lacks the reference's class, so the answer is an empty
    mask): the share of episodes with any predicted foreground pixel and the mean share of the
    target predicted as the class (fractions; sums reduced across processes)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        f64 = torch.float64
        self.add_state("episodes", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("answered", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("area", torch.zeros((), dtype=f64), dist_reduce_fx="sum")

    def update(self, predictions: Sequence[torch.Tensor]) -> None:
        """Add negative episodes: (H_i, W_i) binary predictions."""
        for prediction in predictions:
            hit = prediction.bool().cpu()
            self.episodes += 1
            self.answered += bool(hit.any())
            self.area += hit.double().mean()

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.episodes.clamp_min(1.0)
        return {"fp_rate": self.answered / count, "area": self.area / count}
