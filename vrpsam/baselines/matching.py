"""Matcher's pure pieces: patch matching, prompt sampling, SAM-mask filters and mask scores.

Matcher (Liu et al., ICLR 2024, "Matcher: Segment Anything with One Shot Using All-Purpose Feature
Matching") segments the target with a frozen DINOv2 and a frozen SAM, in four steps that each live
here as small functions on plain tensors and arrays, so they can be tested on hand-made cases:

1. *Correspondence*: L2-normalised patch features; the reference patches touching the annotation
   are the foreground; Hungarian matching foreground → target patches, then target → reference,
   keeping the pairs whose reverse match lands in the foreground (:func:`bidirectional_matches`).
2. *Prompts*: the matched target patches' centres, as random subsets (or k-means++ centres, all
   their small subsets) (:func:`sample_prompt_sets`, :func:`kmeans_pp`).
3. *SAM masks*: filtered by predicted IoU and stability score, de-duplicated by box NMS
   (:func:`quality_keep`, :func:`nms_keep`).
4. *Scores*: emd, purity, coverage (:func:`emd_distances`, :func:`purity_coverage`), the score
   α(1−emd) + β·purity·coverage^λ, and the choice of the masks to merge (:func:`select_masks`).

:mod:`vrpsam.baselines.matcher` composes them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The released Matcher keeps only the most similar half of the matches when there are more than
# this many (patch_level_matching, ``len(sim_matched) > 40``).
REDUCE_ABOVE = 40
# ... and enumerates every subset of the prompt points, instead of drawing random ones, when there
# are at most this many (RobustPromptSampler.sample_points, ``len(points) > 8``).
EXHAUSTIVE_UP_TO = 8


# --- 1. correspondence -------------------------------------------------------------------------


def normalised_patches(tokens: torch.Tensor) -> torch.Tensor:
    """Patch tokens as unit vectors, so a dot product is a cosine similarity.

    Args:
        tokens: (B, C, h, w) patch-token maps.

    Returns:
        (B, h*w, C) float32, L2-normalised along C, patches in row-major order.
    """
    return F.normalize(tokens.float().flatten(2).transpose(1, 2), dim=-1)


def touching_patches(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Which cells of a patch grid a mask touches (one pixel is enough).

    Adaptive max pooling: the bins cover every pixel even when the mask size is not a multiple of
    the grid, so a single clicked point never vanishes (DESIGN §3).

    Args:
        masks: (B, H, W) binary masks (bool or float).
        grid: (h, w) of the patch grid.

    Returns:
        (B, h*w) bool, row-major.
    """
    pooled = F.adaptive_max_pool2d(masks[:, None].float(), grid)
    return (pooled > 0).flatten(1)


@dataclass
class Matches:
    """Reference → target patch pairs.

    Attributes:
        reference: (M,) int64 indices into the (concatenated) reference patches.
        target: (M,) int64 indices into the target patches.
        similarity: (M,) cosine similarity of each pair.
    """

    reference: torch.Tensor
    target: torch.Tensor
    similarity: torch.Tensor

    def __len__(self) -> int:
        return int(self.target.numel())

    def take(self, keep: torch.Tensor) -> Matches:
        return Matches(self.reference[keep], self.target[keep], self.similarity[keep])


def hungarian(similarity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-similarity one-to-one assignment of rows to columns (scipy, on the CPU).

    Args:
        similarity: (R, N) scores.

    Returns:
        row and column indices (each (min(R, N),) int64, rows ascending).
    """
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(similarity.detach().double().cpu().numpy(), maximize=True)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def bidirectional_matches(
    similarity: torch.Tensor, foreground: torch.Tensor, *, fallback: bool = True
) -> Matches:
    """Forward matching foreground → target, kept where the reverse matching agrees.

    Forward: Hungarian matching of the foreground reference patches to the target patches.
    Reverse: Hungarian matching of the matched target patches to *all* reference patches; a pair
    survives when its target patch's reverse partner is a foreground patch (not necessarily the
    one it came from), which drops target patches that resemble the background better.

    Args:
        similarity: (R, N) cosine similarity, R reference patches (all shots concatenated),
            N target patches.
        foreground: (R,) bool, the reference patches touching the annotation.
        fallback: when the reverse filter rejects every pair, keep all forward pairs (the
            released Matcher does); False returns no pairs then.

    Returns:
        the surviving pairs (empty when the foreground is empty).
    """
    foreground = foreground.to(similarity.device)
    fg = foreground.nonzero()[:, 0]
    if fg.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=similarity.device)
        return Matches(empty, empty, similarity.new_zeros(0))
    rows, cols = hungarian(similarity[fg])
    rows, cols = rows.to(fg.device), cols.to(fg.device)
    forward = Matches(fg[rows], cols, similarity[fg[rows], cols])
    # M = min(|fg|, N) <= R, so every reverse row is assigned and rows come back in order.
    _, back = hungarian(similarity.t()[forward.target])
    landed = foreground[back.to(fg.device)]
    if not landed.any() and fallback:
        return forward
    return forward.take(landed)


def matched_targets(matches: Matches, *, max_points: int) -> torch.Tensor:
    """The target patches that become prompt points: the most similar pairs first.

    Above :data:`REDUCE_ABOVE` pairs only the most similar half is kept (the released rule), and
    never more than ``max_points`` (our cap; at DINOv2's 37×37 grid the rule already bounds the
    count to 684).

    Returns:
        (P,) int64 target patch indices, most similar first.
    """
    count = len(matches)
    if count > REDUCE_ABOVE:
        count //= 2
    order = torch.argsort(matches.similarity, descending=True, stable=True)
    return matches.target[order[: min(count, max_points)]]


def patch_centres(
    indices: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """(x, y) pixel coordinates of patch centres in an (H, W) frame (pixel centres at integers).

    Args:
        indices: (P,) row-major patch indices of an (h, w) grid.
        grid: (h, w).
        size: (H, W) of the frame.

    Returns:
        (P, 2) float32.
    """
    (gh, gw), (height, width) = grid, size
    rows = torch.div(indices, gw, rounding_mode="floor").float()
    cols = (indices % gw).float()
    return torch.stack([(cols + 0.5) * width / gw - 0.5, (rows + 0.5) * height / gh - 0.5], -1)


# --- 2. prompts --------------------------------------------------------------------------------


def sample_prompt_sets(
    count: int,
    *,
    sizes: tuple[int, int],
    draws: int,
    rng: np.random.Generator,
    max_sets: int,
) -> list[np.ndarray]:
    """Index sets of prompt points, grouped by size (SAM decodes equal-size sets together).

    Each size in ``sizes`` (inclusive, clipped to ``count``) gets ``draws`` random subsets, or
    every subset when ``count <= EXHAUSTIVE_UP_TO`` (the released rule). Repeated subsets are
    dropped: they would give identical masks, which box NMS removes anyway. Above ``max_sets``
    sets in all, a random ``max_sets`` of them are kept.

    Returns:
        one (n_sets, size) int64 array per size, rows sorted; empty when ``count`` is 0.
    """
    groups = []
    for size in range(min(sizes[0], count), min(sizes[1], count) + 1):
        if size == 0:
            continue
        if count > EXHAUSTIVE_UP_TO:
            # A random permutation per draw; its first `size` entries are a uniform subset.
            sets = np.argsort(rng.random((draws, count)), axis=1)[:, :size]
            sets = np.unique(np.sort(sets, axis=1), axis=0)
        else:
            sets = np.array(list(itertools.combinations(range(count), size)), dtype=np.int64)
        groups.append(sets.astype(np.int64))
    total = sum(len(g) for g in groups)
    if total <= max_sets:
        return groups
    keep = np.zeros(total, dtype=bool)
    keep[rng.choice(total, size=max_sets, replace=False)] = True
    split = np.split(keep, np.cumsum([len(g) for g in groups])[:-1])
    return [g[k] for g, k in zip(groups, split, strict=True) if k.any()]


def kmeans_pp(
    points: torch.Tensor, k: int, rng: np.random.Generator, *, iterations: int = 100
) -> torch.Tensor:
    """k-means with k-means++ seeding (Lloyd iterations until the centres stop moving).

    Args:
        points: (P, 2) coordinates.
        k: number of centres (at most P are returned).
        rng: the episode's generator (seeding draws).
        iterations: cap on Lloyd iterations.

    Returns:
        (min(k, P), 2) float32 centres; an emptied cluster keeps its previous centre.
    """
    x = points.detach().double().cpu().numpy()
    k = min(k, len(x))
    if k == 0:
        return points.new_zeros(0, 2)
    centres = x[[rng.integers(len(x))]]
    while len(centres) < k:
        # D² seeding; the 1e-6 keeps duplicate points drawable once every point is a centre.
        dist = np.linalg.norm(x[:, None] - centres[None], axis=-1).min(1) + 1e-6
        prob = dist**2 / (dist**2).sum()
        centres = np.concatenate([centres, x[[rng.choice(len(x), p=prob)]]])
    for _ in range(iterations):
        assign = np.linalg.norm(x[:, None] - centres[None], axis=-1).argmin(1)
        moved = np.stack(
            [x[assign == c].mean(0) if (assign == c).any() else centres[c] for c in range(k)]
        )
        if np.array_equal(moved, centres):
            break
        centres = moved
    return torch.as_tensor(centres, dtype=torch.float32, device=points.device)


# --- 3. SAM masks ------------------------------------------------------------------------------


def quality_keep(
    logits: torch.Tensor,
    iou: torch.Tensor,
    *,
    iou_thresh: float,
    stability_thresh: float,
    mask_threshold: float = 0.0,
    offset: float = 1.0,
) -> torch.Tensor:
    """SAM's automatic-mask-generator filters: predicted IoU (strict) and stability score.

    Args:
        logits: (P, H, W) mask logits.
        iou: (P,) SAM's predicted IoU.
        iou_thresh: keep ``iou > iou_thresh`` (0 disables).
        stability_thresh: keep ``stability >= stability_thresh`` (0 disables); stability is the
            IoU of the masks thresholded at ``mask_threshold ± offset``.

    Returns:
        (P,) bool.
    """
    from segment_anything.utils.amg import calculate_stability_score

    keep = torch.ones_like(iou, dtype=torch.bool)
    if iou_thresh > 0:
        keep &= iou > iou_thresh
    if stability_thresh > 0:
        # An empty mask has stability 0/0 = nan, which fails the comparison: dropped.
        keep &= calculate_stability_score(logits, mask_threshold, offset) >= stability_thresh
    return keep


def nms_keep(masks: torch.Tensor, scores: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """Box NMS over masks' tight boxes, as SAM's automatic mask generator de-duplicates.

    Args:
        masks: (P, H, W) bool.
        scores: (P,) higher is kept first (SAM's predicted IoU).
        iou_thresh: boxes overlapping a kept one by more than this are dropped.

    Returns:
        (K,) int64 indices of the kept masks, by decreasing score.
    """
    from segment_anything.utils.amg import batched_mask_to_box
    from torchvision.ops import batched_nms

    boxes = batched_mask_to_box(masks).float()
    groups = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
    return batched_nms(boxes, scores.float(), groups, iou_threshold=iou_thresh)


# --- 4. scores ---------------------------------------------------------------------------------


def _subsample(count: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    if count <= cap:
        return np.arange(count)
    return np.sort(rng.choice(count, size=cap, replace=False))


def emd_distances(
    cost: np.ndarray, patch_masks: torch.Tensor, *, max_size: int, rng: np.random.Generator
) -> torch.Tensor:
    """Earth mover's distance between the reference foreground and each mask, in features.

    Args:
        cost: (F, N) cost between the F reference-foreground patches and the N target patches,
            (1 − cosine) / 2 in the released code, so in [0, 1].
        patch_masks: (P, N) bool, the target patches each mask touches.
        max_size: cap on each side of one transport problem; larger sides are randomly
            subsampled (uniform weights stay uniform), so a huge mask cannot run for minutes.
        rng: the episode's generator.

    Returns:
        (P,) float32 distances; 1 (the largest cost) for a mask touching no patch.
    """
    import ot

    cost = np.asarray(cost, dtype=np.float64)[_subsample(len(cost), max_size, rng)]
    out = torch.ones(len(patch_masks))
    for i, cols in enumerate(patch_masks.cpu().numpy()):
        cols = np.flatnonzero(cols)
        if cols.size == 0 or len(cost) == 0:
            continue
        cols = cols[_subsample(cols.size, max_size, rng)]
        sub = np.ascontiguousarray(cost[:, cols])
        a = np.full(sub.shape[0], 1.0 / sub.shape[0])
        b = np.full(sub.shape[1], 1.0 / sub.shape[1])
        out[i] = float(ot.emd2(a, b, sub))
    return out


def purity_coverage(
    points: torch.Tensor, masks: torch.Tensor, patch_area: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """How densely (purity) and how completely (coverage) a mask holds the matched points.

    purity = points inside ÷ mask area in patches; coverage = points inside ÷ all points;
    each + 1e-6 as released (so a coverage power of 0 never meets 0⁰ edge cases).

    Args:
        points: (Q, 2) (x, y) pixel coordinates of the matched points.
        masks: (P, H, W) bool.
        patch_area: (P,) number of grid patches each mask touches.

    Returns:
        purity (P,) and coverage (P,), float32.
    """
    height, width = masks.shape[-2:]
    xy = points.round().long()
    x, y = xy[:, 0].clamp(0, width - 1), xy[:, 1].clamp(0, height - 1)
    inside = masks[:, y, x].sum(1).float()
    purity = inside / patch_area.float().clamp(min=1) + 1e-6
    coverage = inside / max(len(points), 1) + 1e-6
    return purity, coverage


def matcher_scores(
    emd: torch.Tensor,
    purity: torch.Tensor,
    coverage: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    exp: float,
) -> torch.Tensor:
    """Score = α(1 − emd) + β·purity·coverage^λ (λ = ``exp``), higher is better."""
    return alpha * (1 - emd) + beta * purity * coverage**exp


def metric_keep(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """Keep ``values >= min(threshold, max)``: the best mask always survives (0 disables)."""
    if threshold <= 0 or values.numel() == 0:
        return torch.ones_like(values, dtype=torch.bool)
    return values >= min(threshold, float(values.max()))


def select_masks(
    scores: torch.Tensor,
    *,
    max_masks: int,
    use_score_filter: bool = True,
    score_thresh: float = 0.33,
    score_norm_thresh: float = 0.1,
    topk_thresh: float = 0.0,
) -> torch.Tensor:
    """Which scored masks are merged into the prediction.

    With ``use_score_filter`` (the released COCO setting): distances d = 1 − score, ascending;
    keep d < ``score_thresh`` (the best always) and (d − min d) / (max d + 1e-6) <
    ``score_norm_thresh``; at most ``max_masks``. Otherwise the ``max_masks`` best, kept where the
    score (divided by the best one when ``topk_thresh > 0``) exceeds ``topk_thresh``.

    Returns:
        (K,) int64 indices into ``scores``, best first; with the score filter empty only when
        ``scores`` is, without it also when no top score passes ``topk_thresh``.
    """
    if scores.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    if use_score_filter:
        distances, rank = torch.sort(1 - scores)
        normalised = (distances - distances.min()) / (distances.max() + 1e-6)
        keep = distances < score_thresh
        keep[0] = True
        keep &= normalised < score_norm_thresh
        return rank[keep][:max_masks]
    top, rank = scores.topk(min(max_masks, scores.numel()))
    if topk_thresh > 0:
        top = top / top.max()
    return rank[top > topk_thresh]
