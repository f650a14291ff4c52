"""RIM: many classes at once, training-free — SAM regions classified by relation-aware matching.

Wang et al., "Image-to-Image Matching via Foundation Models: A New Perspective for
Open-Vocabulary Semantic Segmentation" (CVPR 2024; no public code). Per image:

1. *Regions*: SAM's automatic mask generation — a grid of single-point prompts, SAM's 3 outputs
   each, filtered by predicted IoU and stability score, de-duplicated by box NMS.
2. *Features*: the masked average of the feature extractor's patch features (a DINOv2 in the
   paper; here any backbone of the model registry) for every region and every reference.
3. *Classification*: relation-aware matching of each region with a reference bank — several
   annotated references per class, each its own subcategory — and a background rule
   (:mod:`vrpsam.baselines.rim_matching`, whose doc lists the matching choices).
4. *Label map*: every pixel takes the label of the most confident labelled region covering it.

The paper builds its references with Stable Diffusion; here they come from annotated images
(:meth:`RIM.describe_references`), or from any bank of features of the same extractor.

Our choices where the paper's text was not available to us:

* Step 1 follows segment-anything's ``SamAutomaticMaskGenerator`` defaults (32×32 points,
  predicted IoU > 0.88, stability ≥ 0.95 at offset 1, box NMS 0.7, one crop layer, no small-
  region removal), run through this package's own prompt path so the run's SAM preprocessing
  (resize-longest-side or squash) holds; ``points_per_side`` is a setting (8 on a CPU demo).
  At most ``max_regions`` masks are kept, best predicted IoU first.
* Step 4: overlaps go to the region with the higher combined score of its label; background
  regions paint nothing; pixels no labelled region covers are background (0).
* Few-shot episodes (one class): the bank is the episode's references (all shots, one class);
  the mask logits are +1 where the label map shows that class and −1 elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vrpsam.baselines.base import EpisodeInput, FewShotMethod
from vrpsam.baselines.matcher import NEGATIVE, CandidatePool, Candidates, point_grid
from vrpsam.baselines.matching import quality_keep
from vrpsam.baselines.rim_matching import (
    BACKGROUND_THRESHOLD,
    RELATION_WEIGHT,
    TEMPERATURE,
    class_count,
    classify_regions,
    grid_weights,
    masked_average,
    reference_features,
)
from vrpsam.baselines.sam_prompts import SamImage, encode_image, prompt_sam, to_frame
from vrpsam.modeling.backbones import FrozenBackbone
from vrpsam.modeling.sam import FrozenSam

POSITIVE = 1.0  # the logit where a one-class episode's label map shows the class
# Label-map painting runs over this many regions at a time (bounds the (r, H, W) score stack).
PAINT_CHUNK = 32


class RIM(FewShotMethod):
    """SAM's automatic regions, classified against a reference bank by relation-aware matching.

    Args:
        encoder: the frozen feature extractor; ``mid(x)[1]`` gives its patch features (the run's
            backbone, or a DINOv2 built with ``input_size=518`` for a 37×37 grid).
        sam: the frozen SAM.
        points_per_side: the automatic grid is points_per_side² single-point prompts
            (``SamAutomaticMaskGenerator``: 32).
        points_per_batch: prompts per SAM decoder call (64).
        iou_thresh: keep masks with predicted IoU above this (0.88; 0 disables).
        stability_thresh: ... and stability score at least this (0.95; 0 disables).
        box_nms_thresh: box NMS IoU threshold over all masks (0.7).
        max_regions: at most this many regions, best predicted IoU first (ours).
        temperature, relation_weight, background_threshold: the matching's settings
            (:func:`~vrpsam.baselines.rim_matching.classify_regions`).
    """

    name = "rim"

    def __init__(
        self,
        *,
        encoder: FrozenBackbone,
        sam: FrozenSam,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        iou_thresh: float = 0.88,
        stability_thresh: float = 0.95,
        box_nms_thresh: float = 0.7,
        max_regions: int = 256,
        temperature: float = TEMPERATURE,
        relation_weight: float = RELATION_WEIGHT,
        background_threshold: float = BACKGROUND_THRESHOLD,
    ) -> None:
        super().__init__()
        for key, value in {
            "points_per_side": points_per_side,
            "max_regions": max_regions,
            "points_per_batch": points_per_batch,
        }.items():
            if int(value) < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0 <= relation_weight <= 1:
            raise ValueError(f"relation_weight must lie in [0, 1], got {relation_weight}")
        self.encoder = encoder
        self.sam = sam
        self.points_per_side, self.points_per_batch = int(points_per_side), int(points_per_batch)
        self.iou_thresh, self.stability_thresh = iou_thresh, stability_thresh
        self.box_nms_thresh, self.max_regions = box_nms_thresh, int(max_regions)
        self.matching = dict(
            temperature=temperature,
            relation_weight=relation_weight,
            background_threshold=background_threshold,
        )

    @property
    def device(self) -> torch.device:
        return next(self.sam.parameters()).device

    # --- features ------------------------------------------------------------------------------

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) ImageNet-normalised images → (B, C, h, w) patch features."""
        return self.encoder.mid(images.to(self.device))[1].float()

    @torch.no_grad()
    def describe_references(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Reference features of annotated images: one (C,) feature per image.

        Args:
            images: (K, 3, S, S) ImageNet-normalised images.
            masks: (K, S, S) binary masks of the referenced objects (none empty).

        Returns:
            (K, C) bank features (pair them with (K,) class indices for :meth:`segment`).
        """
        return reference_features(self.features(images), masks.to(self.device))

    # --- regions -------------------------------------------------------------------------------

    @torch.no_grad()
    def propose_regions(
        self, image: torch.Tensor, original_size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's automatic regions of one image (see the module doc).

        Args:
            image: (3, S, S) ImageNet-normalised image.
            original_size: its original (h, w), for SAM's resize-longest-side.

        Returns:
            masks (R, S, S) bool, none empty, and scores (R,) SAM's predicted IoU, best first.
        """
        embedded = encode_image(self.sam, image.to(self.device), original_size)
        return self._propose(embedded)

    def _propose(self, image: SamImage) -> tuple[torch.Tensor, torch.Tensor]:
        pool = CandidatePool(nms_thresh=self.box_nms_thresh, max_size=self.max_regions)
        grid = point_grid(self.points_per_side, image.size).to(self.device)
        for chunk in grid.split(self.points_per_batch):
            pool.add(self._decode(image, chunk))
        found = pool.result()
        if found is None:
            none = torch.zeros(0, *image.size, dtype=torch.bool, device=self.device)
            return none, torch.zeros(0, device=self.device)
        return found.masks, found.iou

    def _decode(self, image: SamImage, points: torch.Tensor) -> Candidates:
        """Decode (P, 1, 2) single-point prompts (3 outputs each); keep the masks that pass."""
        low_res, predicted = prompt_sam(self.sam, image, points=points, multimask_output=True)
        low_res, predicted = low_res.flatten(0, 1), predicted.flatten(0, 1)
        # The IoU filter needs no upsampling: apply it first, upsample only the survivors.
        keep = quality_keep(low_res, predicted, iou_thresh=self.iou_thresh, stability_thresh=0)
        low_res, predicted = low_res[keep], predicted[keep]
        if predicted.numel() == 0:
            return Candidates(low_res, low_res.new_zeros(0, *image.size).bool(), predicted)
        logits = to_frame(self.sam, image, low_res[:, None])[:, 0]
        threshold = self.sam.sam.mask_threshold
        keep = quality_keep(
            logits,
            predicted,
            iou_thresh=0,
            stability_thresh=self.stability_thresh,
            mask_threshold=threshold,
        )
        masks = logits > threshold
        keep &= masks.flatten(1).any(1)  # an empty mask has no feature
        return Candidates(low_res[keep], masks[keep], predicted[keep])

    # --- segmentation --------------------------------------------------------------------------

    @torch.no_grad()
    def segment(
        self,
        image: torch.Tensor,
        bank_feats: torch.Tensor,
        bank_labels: torch.Tensor,
        *,
        class_names: Sequence[str] | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, set[int]]:
        """Label every pixel of an image with one of the bank's classes or background.

        Args:
            image: (3, S, S) ImageNet-normalised image.
            bank_feats: (N, C) reference features of this method's extractor
                (:meth:`describe_references`).
            bank_labels: (N,) int class indices in [0, n_classes), every class present.
            class_names: the classes' names; only their number is used (None: the largest
                label + 1 classes).
            original_size: the image's original (h, w), for SAM's resize-longest-side.

        Returns:
            label_map (S, S) int64 (0 background, c + 1 class c); class_scores (n_classes,), each
            class's best combined score over the regions (0 without regions); present, the set
            of labels (c + 1) the map shows.
        """
        count = class_count(bank_labels, None if class_names is None else len(class_names))
        size = tuple(image.shape[-2:])
        masks, _ = self.propose_regions(image, original_size)
        label_map = torch.zeros(size, dtype=torch.int64, device=self.device)
        if len(masks) == 0:
            return label_map, torch.zeros(count, device=self.device), set()
        features = self.features(image[None])
        regions = masked_average(features, grid_weights(masks, tuple(features.shape[-2:])))
        labels, scores = classify_regions(
            regions,
            bank_feats.to(self.device),
            bank_labels.to(self.device),
            n_classes=count,
            **self.matching,
        )
        label_map = paint_labels(masks, labels, scores)
        present = set(label_map.unique().tolist()) - {0}
        return label_map, scores.amax(0), present

    @torch.no_grad()
    def predict(self, episode: EpisodeInput) -> torch.Tensor:
        """(S, S) float logits of a one-class episode: its references are the bank."""
        self.check(episode)
        bank = self.describe_references(episode.reference_images, episode.reference_masks)
        labels = torch.zeros(len(bank), dtype=torch.int64, device=bank.device)
        label_map, _, _ = self.segment(
            episode.target_image, bank, labels, original_size=episode.target_size
        )
        logits = torch.full(label_map.shape, NEGATIVE, device=label_map.device)
        return logits.masked_fill(label_map == 1, POSITIVE)


def paint_labels(masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Merge overlapping labelled regions into one label map.

    Args:
        masks: (R, H, W) bool region masks.
        labels: (R,) int64 region labels (0 background, c + 1 class c).
        scores: (R, n_classes) combined class scores.

    Returns:
        (H, W) int64: each pixel the label of the covering labelled region with the highest
        score of its label; 0 where no labelled region covers it.
    """
    labelled = labels > 0
    confidence = scores.gather(1, (labels - 1).clamp(min=0)[:, None])[:, 0]
    best = torch.full(masks.shape[-2:], -torch.inf, device=masks.device)
    label_map = torch.zeros(masks.shape[-2:], dtype=torch.int64, device=masks.device)
    index = labelled.nonzero()[:, 0]
    if len(index) == 0:
        return label_map
    for chunk in index.split(PAINT_CHUNK):
        stack = torch.where(masks[chunk], confidence[chunk, None, None], -torch.inf)
        value, winner = stack.max(0)
        better = value > best
        best = torch.where(better, value, best)
        label_map = torch.where(better, labels[chunk][winner], label_map)
    return label_map
