"""Matcher: one-shot segmentation by DINOv2 patch matching and SAM, training-free.

Liu et al., "Matcher: Segment Anything with One Shot Using All-Purpose Feature Matching" (ICLR
2024); the VRP-SAM paper compares against it. Per episode:

1. DINOv2 pre-norm patch tokens of the references and the target (37×37 at a 518 input),
   L2-normalised; the reference patches touching the annotation are the foreground.
2. Bidirectional Hungarian matching (:func:`~vrpsam.baselines.matching.bidirectional_matches`);
   the matched target patches' centres become positive points.
3. Prompt sets: random subsets of those points (sizes 1–6, 64 draws each), or with
   ``use_centres`` every subset of their k-means++ centres; SAM decodes each set (multimask),
   plus — as the released COCO run does (``use_dense_mask 1``) — a 64×64 grid of single points.
   Masks are filtered by predicted IoU and stability score and de-duplicated by box NMS.
4. Each mask is scored by emd, purity and coverage; the best ones are merged (union).

Defaults are the released COCO-20i 1-shot settings (aim-uofa/Matcher ``scripts/coco.sh``, the
rest from ``main_oss.py``'s argument defaults and its printed run log ``output/coco/0/log.txt``).
The released runs use DINOv2 ViT-L/14 and SAM ViT-H; the 5-shot script differs only in merging
at most 5 masks instead of 9 (``kshot_merging_mask``). The released ``use_box`` option (a box
around the matched points added to every prompt set; off for COCO) is not implemented.

Our decisions, where the released code is not a protocol:

* Annotations: any kind. The reference foreground is the set of patches the annotation mask
  touches (max pooling, so a clicked point or a thin scribble keeps its patches).
* k-shot: all shots' patches are concatenated into one reference set (as released): forward
  matching runs from every shot's foreground, reverse matching into every shot's patches, and the
  emd compares a mask with all shots' foreground patches.
* Output: the maximum of the merged masks' SAM logits on the target's pipeline frame, so
  ``> 0`` is exactly their union; −1 everywhere when nothing survives (an annotation touching
  no patch, no matched pair, or no SAM mask passing the filters).
* Caps, so a huge mask or many shots cannot exhaust memory or time: ``max_points`` prompt points,
  ``max_prompt_sets`` sets (the default equals the COCO count 6×64, so it never bites there),
  decoding ``decode_chunk`` prompt sets at a time, at most ``max_candidates`` masks held before an
  early NMS pass, and ``max_emd_size`` patches per side of one transport problem (the default,
  one 37×37 grid, subsamples only k-shot references).
* Randomness (prompt draws, k-means++ seeding, emd subsampling) comes from one
  ``numpy.random.Generator`` seeded with ``episode.seed``: the same episode gives the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vrpsam.baselines.base import EpisodeInput, FewShotMethod
from vrpsam.baselines.matching import (
    bidirectional_matches,
    emd_distances,
    kmeans_pp,
    matched_targets,
    matcher_scores,
    metric_keep,
    nms_keep,
    normalised_patches,
    patch_centres,
    purity_coverage,
    quality_keep,
    sample_prompt_sets,
    select_masks,
    touching_patches,
)
from vrpsam.baselines.sam_prompts import SamImage, prompt_sam, to_frame
from vrpsam.modeling.backbones import DinoV2Backbone
from vrpsam.modeling.sam import FrozenSam

NEGATIVE = -1.0  # the logit of an all-background prediction


@dataclass
class Correspondence:
    """Step 1–2's result.

    Attributes:
        similarity: (R, N) cosine similarity, R reference patches (all shots), N target patches.
        foreground: (R,) bool, the reference patches touching the annotation.
        points: (P, 2) (x, y) of the matched target patches' centres on the pipeline frame.
        grid: (h, w) of the patch grid.
        shots: number of references.
    """

    similarity: torch.Tensor
    foreground: torch.Tensor
    points: torch.Tensor
    grid: tuple[int, int]
    shots: int = 1


@dataclass
class Candidates:
    """SAM masks that passed the quality filters.

    Attributes:
        low_res: (P, 4h, 4w) SAM logits on SAM's input frame.
        masks: (P, S, S) bool on the pipeline frame.
        iou: (P,) SAM's predicted IoU.
    """

    low_res: torch.Tensor
    masks: torch.Tensor
    iou: torch.Tensor

    def __len__(self) -> int:
        return int(self.iou.numel())

    def take(self, index: torch.Tensor) -> Candidates:
        return Candidates(self.low_res[index], self.masks[index], self.iou[index])

    @staticmethod
    def cat(parts: list[Candidates]) -> Candidates:
        return Candidates(
            low_res=torch.cat([p.low_res for p in parts]),
            masks=torch.cat([p.masks for p in parts]),
            iou=torch.cat([p.iou for p in parts]),
        )


class CandidatePool:
    """Collects candidates chunk by chunk; box NMS at the end, or early when over ``max_size``.

    The early pass keeps memory bounded by ``max_size`` masks; if NMS leaves more than that, the
    ``max_size`` with the best predicted IoU are kept.
    """

    def __init__(self, *, nms_thresh: float, max_size: int) -> None:
        self.nms_thresh = nms_thresh
        self.max_size = max_size
        self.parts: list[Candidates] = []
        self.size = 0

    def add(self, part: Candidates) -> None:
        if len(part):
            self.parts.append(part)
            self.size += len(part)
        if self.size > self.max_size:
            self.parts = [self.result()]
            self.size = len(self.parts[0])

    def result(self) -> Candidates | None:
        if not self.parts:
            return None
        pool = Candidates.cat(self.parts)
        keep = nms_keep(pool.masks, pool.iou, self.nms_thresh)  # sorted by decreasing IoU
        return pool.take(keep[: self.max_size])


class Matcher(FewShotMethod):
    """DINOv2 matching → SAM prompt sets → scored, merged SAM masks.

    Args:
        encoder: frozen DINOv2 (its ``mid(x)[1]`` gives the pre-norm tokens of ``high_block``;
            build it with ``input_size=518`` for the released 37×37 grid).
        sam: the frozen SAM.
        use_centres: prompt with k-means++ centres of the matched points instead of the points
            (released ``--use_points_or_centers`` unset; COCO sets it, so False).
        num_centres: K of k-means++ (``--num_centers`` 8).
        sample_sizes: inclusive range of prompt-set sizes (``--sample-range (1,6)``).
        draws_per_size: random sets per size (``--max_sample_iterations`` 64).
        multimask: SAM's 3 outputs per prompt set (``--multimask_output 1``,
            ``--output_layer 3`` = all three).
        iou_thresh: keep prompt-set masks with predicted IoU above this (``--iou_filter`` 0.85).
        stability_thresh: ... and stability at least this (``--sel_stability_score_thresh`` 0.9).
        dense_points_per_side: an extra grid of single-point prompts, n×n; 0 disables
            (``--use_dense_mask 1``, ``--points_per_side`` 64).
        dense_multimask: 3 outputs per grid point (``--dense_multimask_output 0``: one).
        dense_iou_thresh: grid masks' predicted-IoU filter (``--pred_iou_thresh`` 0.88).
        dense_stability_thresh: grid masks' stability filter (``--stability_score_thresh`` 0.95).
        box_nms_thresh: box NMS IoU over all masks (``--box_nms_thresh`` 0.65).
        alpha, beta, exp: score = α(1−emd) + β·purity·coverage^exp (``--alpha 1 --beta 0
            --exp 0``).
        emd_filter, purity_filter, coverage_filter: drop masks below min(threshold, best) of
            1−emd, purity, coverage; 0 disables (``0``, ``0.02``, ``0``).
        use_score_filter: merge by the distance filter below, else the top scores
            (``--use_score_filter`` set).
        score_filter, score_norm_filter: keep 1−score below ``score_filter`` and its normalised
            value below ``score_norm_filter`` (``--deep_score_filter`` 0.33,
            ``--deep_score_norm_filter`` 0.1).
        topk_scores_threshold: without the score filter, keep top scores above this
            (``--topk_scores_threshold`` 0).
        num_merging_mask: at most this many masks are merged, 1-shot (``--num_merging_mask`` 9).
        kshot_merging_mask: the same for k > 1 shots (the released 5-shot script: 5); None uses
            ``num_merging_mask``.
        reverse_fallback: when the reverse matching rejects every pair, keep all forward pairs
            (released behaviour) instead of predicting background.
        max_points: cap on prompt points (ours; 684 at most at 37×37, so no effect there).
        max_prompt_sets: cap on prompt sets per episode (ours; 384 = 6 sizes × 64 draws).
        decode_chunk: prompt sets per SAM decoder call (the released ``points_per_batch`` 64).
        max_candidates: masks held before an early NMS pass (ours).
        max_emd_size: cap on each side of one emd problem (ours; 37² = one full grid).
    """

    name = "matcher"

    def __init__(
        self,
        *,
        encoder: DinoV2Backbone,
        sam: FrozenSam,
        use_centres: bool = False,
        num_centres: int = 8,
        sample_sizes: tuple[int, int] = (1, 6),
        draws_per_size: int = 64,
        multimask: bool = True,
        iou_thresh: float = 0.85,
        stability_thresh: float = 0.9,
        dense_points_per_side: int = 64,
        dense_multimask: bool = False,
        dense_iou_thresh: float = 0.88,
        dense_stability_thresh: float = 0.95,
        box_nms_thresh: float = 0.65,
        alpha: float = 1.0,
        beta: float = 0.0,
        exp: float = 0.0,
        emd_filter: float = 0.0,
        purity_filter: float = 0.02,
        coverage_filter: float = 0.0,
        use_score_filter: bool = True,
        score_filter: float = 0.33,
        score_norm_filter: float = 0.1,
        topk_scores_threshold: float = 0.0,
        num_merging_mask: int = 9,
        kshot_merging_mask: int | None = 5,
        reverse_fallback: bool = True,
        max_points: int = 1024,
        max_prompt_sets: int = 384,
        decode_chunk: int = 64,
        max_candidates: int = 512,
        max_emd_size: int = 1369,
    ) -> None:
        super().__init__()
        lo, hi = (int(s) for s in sample_sizes)
        if not 1 <= lo <= hi:
            raise ValueError(
                f"sample_sizes must be (lo, hi) with 1 <= lo <= hi, got {sample_sizes}"
            )
        caps = {"max_points": max_points, "max_prompt_sets": max_prompt_sets,
                "decode_chunk": decode_chunk, "max_candidates": max_candidates,
                "max_emd_size": max_emd_size, "num_merging_mask": num_merging_mask,
                "kshot_merging_mask": kshot_merging_mask or num_merging_mask}  # fmt: skip
        for key, value in caps.items():
            if int(value) < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        self.encoder = encoder
        self.sam = sam
        self.use_centres, self.num_centres = use_centres, num_centres
        self.sample_sizes, self.draws_per_size = (lo, hi), draws_per_size
        self.prompted = dict(multimask=multimask, iou=iou_thresh, stability=stability_thresh)
        self.dense_points_per_side = dense_points_per_side
        self.dense = dict(multimask=dense_multimask, iou=dense_iou_thresh,
                          stability=dense_stability_thresh)  # fmt: skip
        self.box_nms_thresh = box_nms_thresh
        self.alpha, self.beta, self.exp = alpha, beta, exp
        self.filters = {"coverage": coverage_filter, "emd": emd_filter, "purity": purity_filter}
        self.selection = dict(use_score_filter=use_score_filter, score_thresh=score_filter,
                              score_norm_thresh=score_norm_filter,
                              topk_thresh=topk_scores_threshold)  # fmt: skip
        self.merging = (num_merging_mask, kshot_merging_mask or num_merging_mask)
        self.reverse_fallback = reverse_fallback
        self.max_points, self.max_prompt_sets = max_points, max_prompt_sets
        self.decode_chunk, self.max_candidates = decode_chunk, max_candidates
        self.max_emd_size = max_emd_size

    @property
    def device(self) -> torch.device:
        return next(self.sam.parameters()).device

    @torch.no_grad()
    def predict(self, episode: EpisodeInput) -> torch.Tensor:
        """(S, S) float logits on the target's pipeline frame (see the module doc)."""
        self.check(episode)
        rng = np.random.default_rng(episode.seed)
        size = tuple(episode.target_image.shape[-2:])
        negative = torch.full(size, NEGATIVE, device=self.device)
        found = self.correspond(episode)
        if len(found.points) == 0:
            return negative
        image = self.encode_target(episode.target_image.to(self.device), episode.target_size)
        candidates = self.propose(image, found.points, rng)
        if candidates is None:
            return negative
        chosen = self.choose(candidates, found, rng)
        if chosen.numel() == 0:
            return negative
        logits = to_frame(self.sam, image, candidates.low_res[chosen.to(self.device)][:, None])
        return logits[:, 0].amax(0)

    # --- steps -------------------------------------------------------------------------------

    def correspond(self, episode: EpisodeInput) -> Correspondence:
        """Patch features, reference foreground, bidirectional matching → prompt points."""
        images = torch.cat([episode.target_image[None], episode.reference_images])
        tokens = self.encoder.mid(images.to(self.device))[1]
        grid = (int(tokens.shape[-2]), int(tokens.shape[-1]))
        features = normalised_patches(tokens)
        reference = features[1:].flatten(0, 1)  # all shots' patches in one set
        similarity = reference @ features[0].t()
        foreground = touching_patches(episode.reference_masks.to(self.device), grid).flatten()
        matches = bidirectional_matches(similarity, foreground, fallback=self.reverse_fallback)
        targets = matched_targets(matches, max_points=self.max_points)
        points = patch_centres(targets, grid, tuple(episode.target_image.shape[-2:]))
        return Correspondence(similarity, foreground, points, grid, episode.shots)

    def propose(
        self, image: SamImage, points: torch.Tensor, rng: np.random.Generator
    ) -> Candidates | None:
        """SAM masks of the dense grid and of every prompt set, filtered, after box NMS."""
        pool = CandidatePool(nms_thresh=self.box_nms_thresh, max_size=self.max_candidates)
        if self.dense_points_per_side > 0:
            grid = point_grid(self.dense_points_per_side, image.size).to(self.device)
            for chunk in grid.split(self.decode_chunk):
                pool.add(self._decode(image, chunk, **self.dense))
        prompt_points = kmeans_pp(points, self.num_centres, rng) if self.use_centres else points
        groups = sample_prompt_sets(
            len(prompt_points),
            sizes=self.sample_sizes,
            draws=self.draws_per_size,
            rng=rng,
            max_sets=self.max_prompt_sets,
        )
        for sets in groups:  # equal-size sets decode together (no padding tokens)
            for chunk in torch.as_tensor(sets, device=self.device).split(self.decode_chunk):
                pool.add(self._decode(image, prompt_points[chunk], **self.prompted))
        return pool.result()

    def _decode(
        self,
        image: SamImage,
        points: torch.Tensor,
        *,
        multimask: bool,
        iou: float,
        stability: float,
    ) -> Candidates:
        """Decode (P, n, 2) positive points; keep the masks passing the quality filters."""
        low_res, predicted = prompt_sam(self.sam, image, points=points, multimask_output=multimask)
        low_res, predicted = low_res.flatten(0, 1), predicted.flatten(0, 1)
        # The IoU filter needs no upsampling: apply it first, upsample only the survivors.
        keep = quality_keep(low_res, predicted, iou_thresh=iou, stability_thresh=0)
        low_res, predicted = low_res[keep], predicted[keep]
        if predicted.numel() == 0:
            return Candidates(low_res, low_res.new_zeros(0, *image.size).bool(), predicted)
        logits = to_frame(self.sam, image, low_res[:, None])[:, 0]
        threshold = self.sam.sam.mask_threshold
        keep = quality_keep(
            logits, predicted, iou_thresh=0, stability_thresh=stability, mask_threshold=threshold
        ).nonzero()[:, 0]
        masks = logits[keep] > threshold
        nonempty = masks.flatten(1).any(1)  # an empty mask cannot be scored
        keep = keep[nonempty]
        return Candidates(low_res[keep], masks[nonempty], predicted[keep])

    def choose(
        self, candidates: Candidates, found: Correspondence, rng: np.random.Generator
    ) -> torch.Tensor:
        """Score the candidates (emd, purity, coverage), filter them, pick the masks to merge.

        The filters run in the released order (coverage, 1−emd, purity), each relative to the
        best survivor. The emd, the expensive metric, is computed only for the masks it is
        needed for: after the purity filter when the emd filter is off (the COCO setting).

        Returns:
            (K,) int64 indices into ``candidates``, best first.
        """
        patch_masks = touching_patches(candidates.masks, found.grid)
        purity, coverage = purity_coverage(found.points, candidates.masks, patch_masks.sum(1))
        purity, coverage = purity.cpu(), coverage.cpu()
        cost = ((1 - found.similarity[found.foreground]) / 2).cpu().numpy()
        emd = torch.full((len(candidates),), float("nan"))

        def fill_emd(index: torch.Tensor) -> None:
            emd[index] = emd_distances(
                cost, patch_masks[index.to(patch_masks.device)], max_size=self.max_emd_size, rng=rng
            )

        index = torch.arange(len(candidates))
        index = index[metric_keep(coverage[index], self.filters["coverage"])]
        if self.filters["emd"] > 0:
            fill_emd(index)
            index = index[metric_keep(1 - emd[index], self.filters["emd"])]
        index = index[metric_keep(purity[index], self.filters["purity"])]
        if self.filters["emd"] <= 0:
            fill_emd(index)
        scores = matcher_scores(
            emd[index],
            purity[index],
            coverage[index],
            alpha=self.alpha,
            beta=self.beta,
            exp=self.exp,
        )
        merging = self.merging[0] if found.shots == 1 else self.merging[1]
        return index[select_masks(scores, max_masks=merging, **self.selection)]


def point_grid(per_side: int, size: tuple[int, int]) -> torch.Tensor:
    """SAM's automatic-mask-generator grid: per_side² points at cell centres of an (H, W) frame.

    Returns:
        (per_side², 1, 2) (x, y) pixel coordinates, one single-point prompt set each.
    """
    height, width = size
    offsets = (torch.arange(per_side, dtype=torch.float32) + 0.5) / per_side
    ys, xs = torch.meshgrid(offsets * height - 0.5, offsets * width - 0.5, indexing="ij")
    return torch.stack([xs, ys], dim=-1).reshape(-1, 1, 2)
