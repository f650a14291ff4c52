"""RIM's pure pieces: masked pooling, individual and relation-aware matching, region labels.

RIM (Wang et al., CVPR 2024, "Image-to-Image Matching via Foundation Models: A New Perspective for
Open-Vocabulary Semantic Segmentation") classifies SAM regions by matching their DINOv2 features
with image-modal reference features of every class, several per class ("subcategories"), and
matches by *ranking distribution* (relation-aware matching) instead of by the single most similar
reference (individual matching), using the structure of the inter-class relations.

What the public text we could read says (abstract, Fig. 2 caption): references come from Stable
Diffusion images and SAM masks (here: annotated images); region and reference features live in
DINOv2's feature space; a region is matched to the references "based on relation-aware ranking
distribution". The method section's equations were not readable to us, so the following are
**our choices**, each kept as a named argument:

* Features: the masked average of the extractor's patch features, the mask resized to the
  feature grid by area (each cell weighs the fraction of it the mask covers), so a thin or tiny
  annotation keeps the cells it touches (:func:`reference_features`, :func:`masked_average`).
* Individual matching: a class scores the largest cosine similarity between the region and that
  class's references (:func:`individual_scores`).
* Ranking distribution: the softmax of cosine similarities at temperature ``temperature`` (the
  top-one probabilities of a ranking model: the order of the similarities, softened). A region's
  distribution is over the bank's references; a reference's is over the *other* references.
* Relation-aware matching: every reference is its own subcategory. Region *r* and reference *j*
  are compared on their relations to every reference but *j* — both distributions leave *j* out,
  so the direct similarity (individual matching's business) does not dominate — by the
  Jensen–Shannon divergence; the match is ``1 − JS / ln 2`` in [0, 1]; a class scores its best
  subcategory (:func:`relation_aware_scores`). With a single reference in the bank there are no
  relations: every match is 1.
* Final score: ``(1 − relation_weight) · individual + relation_weight · relation``; the label is
  its argmax + 1 (label 0 is background).
* Background: softmax distributions cannot tell "no class fits" from "all fit" (they ignore a
  common shift of the similarities), so a region is background when its best reference of the
  chosen class has cosine similarity below ``background_threshold`` (:func:`classify_regions`).

Classes are 0-based indices into the bank's class list; region labels are those indices + 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TEMPERATURE = 0.1
RELATION_WEIGHT = 0.5
BACKGROUND_THRESHOLD = 0.5
# Relation-aware matching builds (regions × references × references) tensors: regions go in
# chunks so that one chunk holds at most this many elements.
CHUNK_ELEMENTS = 1 << 24


# --- features ----------------------------------------------------------------------------------


def grid_weights(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Masks on a feature grid by area: each cell weighs the fraction of it a mask covers.

    Args:
        masks: (K, H, W) binary masks (bool or float).
        grid: (h, w) of the feature grid.

    Returns:
        (K, h, w) float weights in [0, 1]; a mask with any pixel keeps a positive weight.
    """
    return F.adaptive_avg_pool2d(masks[:, None].float(), grid)[:, 0]


def masked_average(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of feature maps.

    Args:
        features: (K, C, h, w), or (1, C, h, w) shared by all K weights.
        weights: (K, h, w) non-negative weights, each with a positive sum.

    Returns:
        (K, C) float.
    """
    total = weights.flatten(1).sum(1)
    pooled = torch.einsum(
        "kchw,khw->kc", features.float().expand(len(weights), -1, -1, -1), weights.float()
    )
    return pooled / total[:, None]


def reference_features(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Masked average pooling of K feature maps with their K masks.

    Args:
        features: (K, C, h, w) patch features of the K annotated images.
        masks: (K, H, W) their binary masks at any resolution (resized to (h, w) by area).

    Returns:
        (K, C) reference features.

    Raises:
        ValueError: a mask is empty (naming which).
    """
    if features.shape[0] != masks.shape[0]:
        raise ValueError(f"{features.shape[0]} feature maps for {masks.shape[0]} masks")
    empty = (masks.flatten(1) <= 0).all(1).nonzero()[:, 0].tolist()
    if empty:
        raise ValueError(f"reference mask(s) {empty} are empty: nothing to pool a feature from")
    return masked_average(features, grid_weights(masks, tuple(features.shape[-2:])))


# --- matching ----------------------------------------------------------------------------------


def class_count(bank_labels: torch.Tensor, n_classes: int | None = None) -> int:
    """The number of classes of a bank, checking that every class has a reference.

    Args:
        bank_labels: (N,) int64 class indices in [0, n_classes).
        n_classes: None: ``max + 1``.

    Raises:
        ValueError: an empty bank, a label out of range, or a class without references.
    """
    if bank_labels.numel() == 0:
        raise ValueError("the reference bank is empty")
    count = int(bank_labels.max()) + 1 if n_classes is None else int(n_classes)
    if int(bank_labels.min()) < 0 or int(bank_labels.max()) >= count:
        found = bank_labels.unique().tolist()
        raise ValueError(f"bank labels must lie in [0, {count}), got {found}")
    missing = sorted(set(range(count)) - set(bank_labels.unique().tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no reference in the bank")
    return count


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, C) × (B, C) → (A, B) cosine similarities (float32)."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def best_per_class(values: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(R, N) per-reference values → (R, n_classes): the maximum over each class's references."""
    index = labels.to(values.device).long().expand(values.shape[0], -1)
    out = values.new_full((values.shape[0], n_classes), -math.inf)
    return out.scatter_reduce(1, index, values, reduce="amax")


def individual_scores(
    region_feats: torch.Tensor,
    bank_feats: torch.Tensor,
    bank_labels: torch.Tensor,
    *,
    n_classes: int | None = None,
) -> torch.Tensor:
    """Individual matching: each class's most similar reference.

    Args:
        region_feats: (R, C) region features.
        bank_feats: (N, C) reference features.
        bank_labels: (N,) their class indices.
        n_classes: the number of classes (None: ``bank_labels.max() + 1``).

    Returns:
        (R, n_classes) the largest cosine similarity to a reference of each class.
    """
    count = class_count(bank_labels, n_classes)
    return best_per_class(cosine(region_feats, bank_feats), bank_labels, count)


def ranking_distribution(similarity: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax of similarities along the last axis (−inf entries get probability 0)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return (similarity / temperature).softmax(-1)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence (nats, in [0, ln 2]) of distributions along the last axis."""
    m = (p + q) / 2
    kl_p = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(-1)
    kl_q = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(-1)
    return ((kl_p + kl_q) / 2).clamp(min=0)


def relation_matches(
    region_feats: torch.Tensor, bank_feats: torch.Tensor, *, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """Relation-aware match of every region with every reference (see the module doc).

    Args:
        region_feats: (R, C).
        bank_feats: (N, C).
        temperature: of the ranking distributions.

    Returns:
        (R, N) ``1 − JS / ln 2`` of the region's and the reference's ranking distributions over
        the references other than that one; all 1 when N = 1.
    """
    count = bank_feats.shape[0]
    if count == 1:
        return region_feats.new_ones(region_feats.shape[0], 1).float()
    itself = torch.eye(count, dtype=torch.bool, device=bank_feats.device)
    references = ranking_distribution(
        cosine(bank_feats, bank_feats).masked_fill(itself, -math.inf), temperature
    )  # (N, N): row j is reference j's distribution over the others
    similarity = cosine(region_feats, bank_feats)
    step = max(1, CHUNK_ELEMENTS // (count * count))
    out = []
    for chunk in similarity.split(step):
        left_out = chunk[:, None, :].expand(-1, count, -1).masked_fill(itself, -math.inf)
        regions = ranking_distribution(left_out, temperature)  # (r, N, N): [r, j] leaves j out
        out.append(1 - js_divergence(regions, references[None]) / math.log(2))
    return torch.cat(out)


def relation_aware_scores(
    region_feats: torch.Tensor,
    bank_feats: torch.Tensor,
    bank_labels: torch.Tensor,
    *,
    temperature: float = TEMPERATURE,
    n_classes: int | None = None,
) -> torch.Tensor:
    """Relation-aware matching, each reference its own subcategory.

    Args:
        region_feats: (R, C) region features.
        bank_feats: (N, C) reference features.
        bank_labels: (N,) their class indices.
        temperature: of the ranking distributions (softmax of cosine similarities).
        n_classes: the number of classes (None: ``bank_labels.max() + 1``).

    Returns:
        (R, n_classes) in [0, 1]: each class's best subcategory match.
    """
    count = class_count(bank_labels, n_classes)
    matches = relation_matches(region_feats, bank_feats, temperature=temperature)
    return best_per_class(matches, bank_labels, count)


def classify_regions(
    region_feats: torch.Tensor,
    bank_feats: torch.Tensor,
    bank_labels: torch.Tensor,
    *,
    temperature: float = TEMPERATURE,
    relation_weight: float = RELATION_WEIGHT,
    background_threshold: float = BACKGROUND_THRESHOLD,
    n_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Label each region: the best combined class score, or background (see the module doc).

    Args:
        region_feats: (R, C) region features.
        bank_feats: (N, C) reference features.
        bank_labels: (N,) their class indices.
        temperature: of the ranking distributions.
        relation_weight: weight of the relation-aware score (1 − it: the individual one).
        background_threshold: a region whose chosen class has no reference at least this
            cosine-similar is background.
        n_classes: the number of classes (None: ``bank_labels.max() + 1``).

    Returns:
        labels (R,) int64 (0 background, c + 1 class c) and scores (R, n_classes), the combined
        class scores.
    """
    if not 0 <= relation_weight <= 1:
        raise ValueError(f"relation_weight must lie in [0, 1], got {relation_weight}")
    count = class_count(bank_labels, n_classes)
    individual = individual_scores(region_feats, bank_feats, bank_labels, n_classes=count)
    relation = relation_aware_scores(
        region_feats, bank_feats, bank_labels, temperature=temperature, n_classes=count
    )
    scores = (1 - relation_weight) * individual + relation_weight * relation
    best = scores.argmax(1) if len(scores) else scores.new_zeros(0, dtype=torch.int64)
    fits = individual.gather(1, best[:, None])[:, 0] >= background_threshold
    return torch.where(fits, best + 1, torch.zeros_like(best)), scores
