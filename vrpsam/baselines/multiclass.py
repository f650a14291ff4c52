"""Several classes (or objects) in one image from per-class mask logits: one label map and a
presence score per class.

Every method that gives mask logits for one reference gives them for each class of a reference
bank; these rules turn the stack into what a multi-class user asks for. The same merge serves the
video benchmark (objects of a sequence) and the reference bank (classes of a bank).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PRESENCE_TOP_SHARE = 0.01
"""Share of an image's pixels whose foreground probabilities form a class's presence score."""


def merge_labels(
    logits: torch.Tensor,
    label_ids: Sequence[int],
    present: Sequence[bool] | torch.Tensor | None = None,
    *,
    dtype: torch.dtype = torch.int64,
) -> torch.Tensor:
    """One label map from per-class logits: a pixel takes the class with the highest logit among
    those with a positive one (and judged present); background (0) where none is.

    Args:
        logits: (C, ...) logits, one slice per class (e.g. (C, N, H, W) or (C, H, W)).
        label_ids: the C labels, in the order of ``logits`` (none of them 0).
        present: (C,) or (C, N) flags; a class judged absent labels no pixel (default: all
            present).
        dtype: the label map's dtype.

    Returns:
        the label map, ``logits.shape[1:]``.
    """
    if logits.shape[0] != len(label_ids):
        raise ValueError(f"{logits.shape[0]} logit maps for {len(label_ids)} labels")
    if present is not None:
        flags = torch.as_tensor(present, dtype=torch.bool, device=logits.device)
        flags = flags.reshape(*flags.shape, *([1] * (logits.dim() - flags.dim())))
        logits = torch.where(flags, logits, torch.full_like(logits, -torch.inf))
    ids = torch.tensor([0, *label_ids], dtype=dtype, device=logits.device)
    best, index = logits.max(dim=0)
    return torch.where(best > 0, ids[index + 1], ids[0])


def presence_scores(logits: torch.Tensor, top_share: float = PRESENCE_TOP_SHARE) -> torch.Tensor:
    """How sure a method is that each class is in each image: the mean foreground probability of
    the image's ``top_share`` most confident pixels (our choice: one stray pixel does not make a
    class present, a small object still does).

    Args:
        logits: (C, N, H, W) (or (C, H, W)) mask logits.
        top_share: the share of pixels averaged.

    Returns:
        (C, N) (or (C,)) scores in [0, 1].
    """
    flat = logits.flatten(start_dim=logits.dim() - 2).float()
    k = max(1, round(top_share * flat.shape[-1]))
    return torch.sigmoid(flat.topk(k, dim=-1).values).mean(dim=-1)


def choose_threshold(scores: torch.Tensor, present: torch.Tensor) -> dict[str, float | int]:
    """The presence threshold with the best F1 over (image, class) pairs (ties: the highest
    accuracy, then the lowest threshold): a pair is claimed when its score is at least the
    threshold. Candidates are the midpoints between consecutive distinct scores and the ends,
    so the choice does not depend on the pairs' order.

    Args:
        scores: (P,) presence scores.
        present: (P,) bool, the class is in the image's ground truth.

    Returns:
        ``threshold``, ``f1``, ``accuracy`` (fractions) at it, ``pairs``, and ``auc``: how well
        the scores separate the pairs whatever the threshold (the chance that a present pair
        outscores an absent one, ties counting half; None without pairs of both kinds).
    """
    scores, present = scores.double().flatten().cpu(), present.bool().flatten().cpu()
    if scores.numel() == 0:
        raise ValueError("no validation pairs to choose the presence threshold on")
    values = torch.unique(scores)  # sorted
    candidates = torch.cat([values[:1] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-6])
    claimed = scores[None, :] >= candidates[:, None]
    tp = (claimed & present).sum(1).double()
    fp = (claimed & ~present).sum(1).double()
    fn = (~claimed & present).sum(1).double()
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    accuracy = (claimed == present).double().mean(1)
    # Lexicographic best: F1, then accuracy, then the lowest threshold (first in order).
    tied = f1 == f1.max()
    best = int(torch.nonzero(tied & (accuracy == accuracy[tied].max()))[0, 0])
    return {
        "threshold": float(candidates[best]),
        "f1": float(f1[best]),
        "accuracy": float(accuracy[best]),
        "pairs": int(scores.numel()),
        "auc": _auc(scores[present], scores[~present]),
    }


def _auc(positive: torch.Tensor, negative: torch.Tensor) -> float | None:
    if positive.numel() == 0 or negative.numel() == 0:
        return None
    above = (positive[:, None] > negative[None, :]).double().sum()
    ties = (positive[:, None] == negative[None, :]).double().sum()
    return float((above + 0.5 * ties) / (positive.numel() * negative.numel()))
