"""PerSAM and PerSAM-F (Zhang et al., 2023, "Personalize Segment Anything Model with One Shot").

Training-free personalisation of a frozen SAM, following the public code
(ZrrSkywalker/Personalize-SAM, ``persam.py`` and ``persam_f.py``):

PerSAM
    The reference feature ``t`` is the mean SAM-encoder feature inside the reference mask (the mask
    resized to the embedding grid). Its cosine similarity with every target position is the
    *location prior*; its argmax is a positive point, its argmin a negative one. SAM decodes them
    with target-guided attention (the prior, standardised and sigmoid-ed, biases the decoder's
    token→image attention) and target-semantic prompting (``t`` added to the decoder's tokens),
    single output. Two cascaded refinements follow, each keeping the best of SAM's 3 outputs by
    predicted IoU: the previous logits as mask prompt, then the mask prompt plus the box of the
    previous mask.

PerSAM-F
    As in the public ``persam_f.py``: ``t`` is the mean of the masked features' maximum and mean;
    one positive point (no negative one, no guided attention, no semantic prompting); SAM's 3
    multimask outputs are fused by 3 weights, two learned and the first ``1 − w₁ − w₂``, fitted on
    the reference image itself (its own location prior's point, the reference mask as ground
    truth; Dice + sigmoid focal loss; AdamW, lr 1e-3, cosine schedule, 1000 iterations). Then two
    refinements, both with the box of the previous mask.

Our decisions where the public code has none (few-shot segmentation episodes, not PerSeg):

* Annotations: a mask is used as it is. A box, points or a scribble first become a reference mask
  by prompting SAM on the reference image — the box as a box prompt, points and scribbles as up
  to ``annotation_points`` foreground points drawn deterministically (episode seed) from the
  annotation — keeping the multimask output with the best predicted IoU. If SAM returns an empty
  mask, the annotation itself is used. PerSAM-F's ground truth is that reference mask.
* k shots: ``t`` pools the masked features of all shots (each masked position weighs the same);
  PerSAM-F fits its weights on all shots at once (mean loss over shots).
* A refinement whose previous mask is empty drops the box (the public code would crash).
* References have no original size in an episode: SAM sees them at the pipeline's square size.

Many targets of one reference (video frames): :meth:`PerSAM.prepare` computes the reference side
once — the references' SAM embeddings and masks, ``t`` and, for PerSAM-F, the fitted weights —
and :meth:`PerSAM.predict_targets` segments each target with it; per target the numbers equal
:meth:`PerSAM.predict` of an episode with the same references.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vrpsam.baselines.base import EpisodeInput, FewShotMethod
from vrpsam.baselines.persam_decoder import decode_guided
from vrpsam.baselines.sam_prompts import (
    SamImage,
    encode_image,
    mask_box,
    prompt_sam,
    sample_points,
    to_frame,
    to_sam_coords,
)
from vrpsam.modeling.sam import FrozenSam
from vrpsam.modeling.vrp_sam import check_inputs

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
STD_EPS = 1e-6


# --- reference side ----------------------------------------------------------------------------


def reference_mask(
    sam: FrozenSam,
    image: SamImage,
    annotation: torch.Tensor,
    kind: str,
    *,
    points: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """A (S, S) boolean reference mask from any annotation kind (see the module doc).

    Args:
        image: the reference's SAM embedding.
        annotation: (S, S) binary annotation mask of kind ``kind``.
        points: at most this many foreground points prompt SAM for point/scribble annotations.
        generator: draws those points.

    Returns:
        (S, S) boolean mask: the annotation itself for masks, otherwise SAM's best-IoU multimask
        output (the annotation when that is empty).
    """
    drawn = annotation > 0.5
    if kind == "mask":
        return drawn
    if kind == "box":
        prompts = {"box": mask_box(drawn)[None]}
    else:
        xy = sample_points(drawn, points, generator)[None]
        labels = torch.ones(xy.shape[:2], dtype=torch.int64, device=xy.device)
        prompts = {"points": xy, "labels": labels}
    low_res, iou = prompt_sam(sam, image, multimask_output=True, **prompts)
    best = int(iou[0].argmax())
    mask = to_frame(sam, image, low_res[:, best : best + 1])[0, 0] > 0
    return mask if mask.any() else drawn


def mask_to_grid(sam: FrozenSam, image: SamImage, mask: torch.Tensor) -> torch.Tensor:
    """A (S, S) boolean mask → (h, w) boolean mask on the image's SAM embedding grid.

    Like the public code: into SAM's input frame (resize + pad), bilinear to the grid, ``> 0``.
    A mask too thin to survive that keeps every cell it touches instead.
    """
    fh, fw = image.frame
    size = sam.image_size
    m = F.interpolate(mask[None, None].float(), (fh, fw), mode="bilinear", align_corners=False)
    m = F.pad(m, (0, size - fw, 0, size - fh))
    grid = image.embedding.shape[-2:]
    out = F.interpolate(m, grid, mode="bilinear", align_corners=False)[0, 0] > 0
    if not out.any():
        out = F.adaptive_max_pool2d(m, grid)[0, 0] > 0
    return out


def masked_features(
    sam: FrozenSam, images: list[SamImage], masks: list[torch.Tensor]
) -> torch.Tensor:
    """SAM-encoder features at the masked grid positions of all references.

    Args:
        images: the references' SAM embeddings.
        masks: their (S, S) boolean masks.

    Returns:
        (N, C), N = masked grid positions over all references (so k shots pool their features).
    """
    rows = []
    for image, mask in zip(images, masks, strict=True):
        grid = mask_to_grid(sam, image, mask)
        rows.append(image.embedding[0].flatten(1)[:, grid.flatten()].T)
    return torch.cat(rows)


# --- target side -------------------------------------------------------------------------------


def location_prior(
    sam: FrozenSam, image: SamImage, feature: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of a (C,) feature with every position of an image's embedding.

    Returns:
        the similarity on the embedding grid (h, w) and on the method's (S, S) frame (upsampled
        like SAM's logits, SAM's padding cropped).
    """
    embedding = F.normalize(image.embedding[0], dim=0)
    grid = torch.einsum("c,chw->hw", F.normalize(feature, dim=0), embedding)
    low_res = F.interpolate(grid[None, None], scale_factor=4, mode="bilinear")
    return grid, to_frame(sam, image, low_res)[0, 0]


def prior_points(
    prior: torch.Tensor, *, negative: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x, y) of a (H, W) prior's argmax (label 1) and, if ``negative``, argmin (label 0).

    Returns:
        points (n, 2) float and labels (n,) int64, n = 2 or 1.
    """
    width = prior.shape[-1]
    flat = [prior.argmax()] + ([prior.argmin()] if negative else [])
    xy = torch.stack([torch.stack([i % width, i // width]) for i in flat]).float()
    labels = torch.tensor([1, 0][: len(flat)], dtype=torch.int64, device=prior.device)
    return xy, labels


def attention_bias(grid: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """PerSAM's target-guided attention bias: sigmoid of the prior, standardised.

    The mean and std come from the (S, S) prior (the image itself, without SAM's padding) as in
    the public code; the map is applied on the embedding grid, where the decoder attends.
    """
    # The epsilon only matters for a constant prior (no information), which it keeps finite.
    return torch.sigmoid((grid - frame.mean()) / (frame.std() + STD_EPS))


def _point_prompt(sam: FrozenSam, image: SamImage, xy: torch.Tensor, labels: torch.Tensor):
    """Sparse and dense SAM prompts (1, n, C), (1, C, h, w) for points on the (S, S) frame."""
    coords = to_sam_coords(image, xy)[None]
    return sam.sam.prompt_encoder(points=(coords, labels[None]), boxes=None, masks=None)


# --- PerSAM-F's fit ----------------------------------------------------------------------------


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss with +1 smoothing of (K, H, W) logits against (K, H, W) {0, 1}, mean over K."""
    probs = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    dice = (2 * (probs * target).sum(1) + 1) / (probs.sum(1) + target.sum(1) + 1)
    return (1 - dice).mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss (α 0.25, γ 2), mean over pixels, mean over the K masks."""
    probs = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = probs * target + (1 - probs) * (1 - target)
    alpha_t = FOCAL_ALPHA * target + (1 - FOCAL_ALPHA) * (1 - target)
    return (alpha_t * ce * (1 - p_t) ** FOCAL_GAMMA).flatten(1).mean(1).mean()


def fuse(logits: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """Weighted sum of (K, 3, H, W) multimask logits; weights (1 − w₁ − w₂, w₁, w₂)."""
    weights = torch.cat([1 - learned.sum()[None], learned])
    return (logits * weights.view(1, 3, 1, 1)).sum(1)


def fit_mask_weights(
    logits: torch.Tensor, target: torch.Tensor, *, iterations: int, lr: float
) -> tuple[torch.Tensor, list[float]]:
    """Fit PerSAM-F's two weights on the reference's own multimask logits.

    SAM's outputs do not depend on the weights, so they are decoded once, not per iteration.

    Args:
        logits: (K, 3, H, W) multimask logits of the K references.
        target: (K, H, W) {0, 1} reference masks.
        iterations, lr: AdamW steps (cosine schedule) and learning rate.

    Returns:
        the learned (w₁, w₂) and the loss before each step.
    """
    # The evaluation loop may run under no_grad or inference mode; the fit needs autograd.
    with torch.inference_mode(False), torch.enable_grad():
        logits, target = logits.detach().clone(), target.detach().clone().float()
        learned = nn.Parameter(torch.full((2,), 1 / 3, device=logits.device))
        optimizer = torch.optim.AdamW([learned], lr=lr, eps=1e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(iterations, 1))
        losses = []
        for _ in range(iterations):
            fused = fuse(logits, learned)
            loss = dice_loss(fused, target) + focal_loss(fused, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    return learned.detach(), losses


# --- methods -----------------------------------------------------------------------------------


class PerSAM(FewShotMethod):
    """PerSAM on a frozen SAM (see the module doc).

    Args:
        sam: the frozen SAM.
        annotation_points: at most this many points, drawn from a point or scribble annotation,
            prompt SAM for the reference mask (20 = every click of a test-time point annotation).
    """

    name = "persam"

    def __init__(self, *, sam: FrozenSam, annotation_points: int = 20) -> None:
        super().__init__()
        if isinstance(annotation_points, bool) or not isinstance(annotation_points, int):
            raise ValueError(f"annotation_points must be an integer, got {annotation_points!r}")
        if annotation_points < 1:
            raise ValueError(f"annotation_points must be at least 1, got {annotation_points}")
        self.sam = sam
        self.annotation_points = annotation_points

    def references(self, episode: EpisodeInput) -> tuple[list[SamImage], list[torch.Tensor]]:
        """Validate the episode; the references' SAM embeddings and (S, S) boolean masks."""
        self.check(episode)
        check_inputs(
            episode.target_image[None],
            episode.reference_images[None],
            episode.reference_masks[None],
        )
        return self.reference_side(
            episode.reference_images, episode.reference_masks, episode.annotation, episode.seed
        )

    def reference_side(
        self,
        reference_images: torch.Tensor,
        reference_masks: torch.Tensor,
        annotation: str,
        seed: int,
    ) -> tuple[list[SamImage], list[torch.Tensor]]:
        """The references' SAM embeddings and (S, S) boolean masks (inputs already validated).

        Args:
            reference_images: (k, 3, S, S) ImageNet-normalised.
            reference_masks: (k, S, S) binary annotations of kind ``annotation``.
            seed: draws the points of point and scribble annotations.
        """
        generator = torch.Generator().manual_seed(seed)
        images, masks = [], []
        for image, drawn in zip(reference_images, reference_masks, strict=True):
            embedded = encode_image(self.sam, image)
            images.append(embedded)
            masks.append(
                reference_mask(
                    self.sam,
                    embedded,
                    drawn,
                    annotation,
                    points=self.annotation_points,
                    generator=generator,
                )
            )
        return images, masks

    def reference_feature(self, images: list[SamImage], masks: list[torch.Tensor]) -> Any:
        """What the target side needs from the references: the mean masked feature ``t`` (C,)."""
        return masked_features(self.sam, images, masks).mean(0)

    @torch.no_grad()
    def prepare(
        self,
        reference_images: torch.Tensor,
        reference_masks: torch.Tensor,
        annotation: str,
        seed: int = 0,
    ) -> Any:
        """The reference side once for many targets (see :meth:`FewShotMethod.prepare`): the
        same state :meth:`predict` builds for an episode with these references."""
        self.check_annotation(annotation)
        # check_inputs wants a target: the first reference stands in (only its shape is read).
        check_inputs(reference_images[:1], reference_images[None], reference_masks[None])
        images, masks = self.reference_side(reference_images, reference_masks, annotation, seed)
        return self.reference_feature(images, masks)

    @torch.no_grad()
    def predict_targets(
        self,
        state: Any,
        target_images: torch.Tensor,
        target_sizes: torch.Tensor | Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Mask logits (N, S, S) of the prepared reference in (N, 3, S, S) targets."""
        logits = [
            self.segment(state, image, tuple(int(v) for v in size))
            for image, size in zip(target_images, target_sizes, strict=True)
        ]
        return torch.stack(logits).float()

    def refine(
        self,
        image: SamImage,
        points: tuple[torch.Tensor, torch.Tensor],
        low_res: torch.Tensor,
        *,
        box: bool,
    ) -> torch.Tensor:
        """One cascaded refinement: the points, ``low_res`` (1, 1, 4h, 4w) as mask prompt and,
        if ``box``, the box of its mask; the best of 3 outputs by predicted IoU (1, 1, 4h, 4w)."""
        prompts = {"points": points[0][None], "labels": points[1][None], "mask_input": low_res}
        if box:
            bounds = mask_box(to_frame(self.sam, image, low_res)[0, 0] > 0)
            if bounds is not None:
                prompts["box"] = bounds[None]
        outputs, iou = prompt_sam(self.sam, image, multimask_output=True, **prompts)
        best = int(iou[0].argmax())
        return outputs[:, best : best + 1]

    @torch.no_grad()
    def predict(self, episode: EpisodeInput) -> torch.Tensor:
        """Mask logits (S, S) of the referenced object on the target's pipeline frame."""
        state = self.reference_feature(*self.references(episode))
        return self.segment(state, episode.target_image, episode.target_size)

    @torch.no_grad()
    def segment(
        self, feature: torch.Tensor, image: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Mask logits (S, S) in one (3, S, S) target of original size ``size`` for the
        reference feature ``t`` (C,)."""
        target = self.encode_target(image, size)
        grid, frame = location_prior(self.sam, target, feature)
        points = prior_points(frame)
        sparse, dense = _point_prompt(self.sam, target, *points)
        low_res, _ = decode_guided(
            self.sam.sam,
            target.embedding,
            sparse,
            dense,
            bias=attention_bias(grid, frame)[None],
            target_embedding=feature[None],
        )
        low_res = self.refine(target, points, low_res, box=False)
        low_res = self.refine(target, points, low_res, box=True)
        return to_frame(self.sam, target, low_res)[0, 0]


class PerSAMF(PerSAM):
    """PerSAM-F: learned fusion of SAM's 3 multimask outputs (see the module doc).

    Args:
        sam: the frozen SAM.
        iterations: AdamW steps of the per-episode fit (the public code: 1000).
        lr: its learning rate (the public code: 1e-3).
        annotation_points: see :class:`PerSAM`.

    Attributes:
        last_fit_losses: the loss before each step of the latest episode's fit.
        last_weights: the latest episode's 3 fusion weights.
    """

    name = "persam_f"

    def __init__(
        self,
        *,
        sam: FrozenSam,
        iterations: int = 1000,
        lr: float = 1e-3,
        annotation_points: int = 20,
    ) -> None:
        super().__init__(sam=sam, annotation_points=annotation_points)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        self.iterations = iterations
        self.lr = lr
        self.last_fit_losses: list[float] = []
        self.last_weights: torch.Tensor | None = None

    def positive_point(
        self, image: SamImage, feature: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The argmax of ``feature``'s location prior on ``image``: points (1, 2), labels (1,)."""
        return prior_points(location_prior(self.sam, image, feature)[1], negative=False)

    def multimask_logits(
        self, image: SamImage, points: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """SAM's 3 low-res outputs (1, 3, 4h, 4w) for the given points."""
        low_res, _ = prompt_sam(
            self.sam, image, points=points[0][None], labels=points[1][None], multimask_output=True
        )
        return low_res

    def fit(
        self, images: list[SamImage], masks: list[torch.Tensor], feature: torch.Tensor
    ) -> torch.Tensor:
        """Fit the fusion weights on the references themselves.

        Args:
            images: the references' SAM embeddings.
            masks: their (S, S) boolean masks (the ground truth).
            feature: (C,) reference feature whose location prior gives each reference's point.

        Returns:
            the two learned weights (w₁, w₂); :attr:`last_weights` holds all 3.
        """
        # Each reference is prompted with its own location prior's point (a self-prior).
        logits = torch.cat(
            [
                to_frame(self.sam, im, self.multimask_logits(im, self.positive_point(im, feature)))
                for im in images
            ]
        )
        learned, self.last_fit_losses = fit_mask_weights(
            logits, torch.stack(masks), iterations=self.iterations, lr=self.lr
        )
        self.last_weights = torch.cat([1 - learned.sum()[None], learned])
        return learned

    def reference_feature(
        self, images: list[SamImage], masks: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """PerSAM-F's reference side: ``t`` (C,), the mean of the masked features' maximum and
        mean, and the two fusion weights fitted on the references (once per reference set)."""
        features = masked_features(self.sam, images, masks)
        feature = (features.amax(0) + features.mean(0)) / 2
        return feature, self.fit(images, masks, feature)

    @torch.no_grad()
    def segment(
        self, state: tuple[torch.Tensor, torch.Tensor], image: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Mask logits (S, S) in one (3, S, S) target of original size ``size`` for the state
        (``t``, fitted weights) of :meth:`reference_feature`."""
        feature, learned = state
        target = self.encode_target(image, size)
        points = self.positive_point(target, feature)
        # Upsampling is linear, so fusing the low-res logits equals fusing the full-size ones.
        low_res = fuse(self.multimask_logits(target, points), learned)[:, None]
        low_res = self.refine(target, points, low_res, box=True)
        low_res = self.refine(target, points, low_res, box=True)
        return to_frame(self.sam, target, low_res)[0, 0]
