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
