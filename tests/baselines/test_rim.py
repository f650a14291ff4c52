"""RIM: masked pooling, individual vs relation-aware matching, background, segmentation."""

import math

import pytest
import torch

from vrpsam.baselines.rim import RIM, paint_labels
from vrpsam.baselines.rim_matching import (
    classify_regions,
    individual_scores,
    reference_features,
    relation_aware_scores,
    relation_matches,
)

A, B, C = 0, 1, 2
NAMES = ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "region"]


def features_with_similarities(pairs: dict[tuple[str, str], float]) -> torch.Tensor:
    """Unit vectors, one per name of NAMES, with the given cosine similarities (others 0)."""
    gram = torch.eye(len(NAMES), dtype=torch.float64)
    for (x, y), value in pairs.items():
        i, j = NAMES.index(x), NAMES.index(y)
        gram[i, j] = gram[j, i] = value
    return torch.linalg.cholesky(gram).float()  # rows: vectors whose Gram matrix is `gram`


@pytest.fixture
def outlier_case():
    """Class A (a1–a3), class B (b1, b2 and the outlier b3, which looks rather like A), class C.

    The region is an A: as similar to every A (0.75) as they are to b3 (0.6) and unlike B's
    typical members (0.35) — but its single most similar reference is the outlier b3 (0.85).
    """
    pairs = {("a1", "a2"): 0.8, ("a1", "a3"): 0.8, ("a2", "a3"): 0.8, ("b1", "b2"): 0.8,
             ("c1", "c2"): 0.8, ("region", "b3"): 0.85}  # fmt: skip
    for a in ("a1", "a2", "a3"):
        pairs[(a, "b3")], pairs[(a, "region")] = 0.6, 0.75
    for b in ("b1", "b2"):
        pairs[(b, "b3")], pairs[(b, "region")] = 0.7, 0.35
    vectors = features_with_similarities(pairs)
    return vectors[-1:], vectors[:-1], torch.tensor([A, A, A, B, B, B, C, C])


def test_individual_matching_follows_an_outlier_where_relations_do_not(outlier_case):
    region, bank, labels = outlier_case
    individual = individual_scores(region, bank, labels)
    relation = relation_aware_scores(region, bank, labels)
    assert individual.shape == relation.shape == (1, 3)
    assert individual.argmax(1).item() == B  # the outlier b3 is the nearest reference
    assert individual[0, B].item() == pytest.approx(0.85, abs=1e-5)
    assert relation.argmax(1).item() == A
    labels_out, scores = classify_regions(region, bank, labels)
    assert labels_out.tolist() == [A + 1] and scores.shape == (1, 3)
    # Without the relations, the combined score is individual matching: the wrong class.
    labels_out, _ = classify_regions(region, bank, labels, relation_weight=0.0)
    assert labels_out.tolist() == [B + 1]


def test_a_reference_matches_itself_perfectly_and_matches_lie_in_the_unit_interval(outlier_case):
    _, bank, _ = outlier_case
    matches = relation_matches(bank, bank)
    assert torch.allclose(matches.diagonal(), torch.ones(len(bank)), atol=1e-5)
    assert matches.min() >= 0 and matches.max() <= 1 + 1e-6
    assert relation_matches(bank[:2], bank[:1]).tolist() == [[1.0], [1.0]]  # no relations


def test_masked_pooling_averages_the_cells_the_mask_covers():
    features = torch.arange(8.0).reshape(2, 2, 2)[None]  # (1, C=2, 2, 2)
    quadrant = torch.zeros(1, 4, 4)
    quadrant[0, :2, :2] = 1  # exactly the top-left cell
    assert reference_features(features, quadrant).tolist() == [[0.0, 4.0]]
    top_row = torch.zeros(1, 4, 4)
    top_row[0, 0, :] = 1  # half of each top cell: the mean of the top two cells
    assert reference_features(features, top_row).tolist() == [[0.5, 4.5]]
    point = torch.zeros(1, 4, 4)
    point[0, 3, 3] = 1  # one pixel keeps its cell
    assert reference_features(features, point).tolist() == [[3.0, 7.0]]


def test_an_empty_reference_mask_is_refused_by_index():
    features = torch.randn(2, 3, 2, 2)
    masks = torch.zeros(2, 4, 4)
    masks[0, 0, 0] = 1
    with pytest.raises(ValueError, match=r"\[1\]"):
        reference_features(features, masks)


def test_a_region_like_no_class_is_background(outlier_case):
    _, bank, labels = outlier_case
    stranger = torch.zeros(1, bank.shape[1] + 1)
    stranger[0, -1] = 1  # orthogonal to every reference
    padded = torch.cat([bank, torch.zeros(len(bank), 1)], dim=1)
    found, scores = classify_regions(stranger, padded, labels)
    assert found.tolist() == [0] and scores.shape == (1, 3)
    found, _ = classify_regions(stranger, padded, labels, background_threshold=-1.0)
    assert found.item() in (A + 1, B + 1, C + 1)


def test_a_class_without_references_is_refused(outlier_case):
    region, bank, labels = outlier_case
    with pytest.raises(ValueError, match=r"classes \[3\]"):
        individual_scores(region, bank, labels, n_classes=4)


def test_overlapping_regions_go_to_the_more_confident_label():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :, :3] = True  # class 0, less confident
    masks[1, :, 2:] = True  # class 1, more confident: wins the shared column
    masks[2] = True  # background: paints nothing
    labels = torch.tensor([1, 2, 0])
    scores = torch.tensor([[0.6, 0.1], [0.2, 0.9], [0.3, 0.3]])
    assert paint_labels(masks, labels, scores)[0].tolist() == [1, 1, 2, 2]
    assert paint_labels(masks[2:], labels[2:], scores[2:]).eq(0).all()


@pytest.fixture
def tiny_rim(tiny_sam, resnet18):
    # Random weights predict low IoUs: the filters would leave no region, so they are off.
    return RIM(encoder=resnet18, sam=tiny_sam, points_per_side=4, iou_thresh=0.0,
               stability_thresh=0.0, background_threshold=-1.0)  # fmt: skip


def test_rim_segments_an_image_into_the_bank_classes(tiny_rim):
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, 128, 128, generator=gen)
    masks = torch.zeros(3, 128, 128)
    masks[:, 30:90, 30:90] = 1
    bank = tiny_rim.describe_references(images, masks)
    assert bank.shape == (3, tiny_rim.features(images[:1]).shape[1])
    image = torch.randn(3, 128, 128, generator=gen)
    regions, iou = tiny_rim.propose_regions(image)
    assert regions.shape[1:] == (128, 128) and len(regions) == len(iou) > 0
    label_map, class_scores, present = tiny_rim.segment(
        image, bank, torch.tensor([0, 1, 2]), class_names=["cat", "dog", "car"]
    )
    assert label_map.shape == (128, 128) and label_map.dtype == torch.int64
    assert set(label_map.unique().tolist()) <= {0, 1, 2, 3}
    assert present == set(label_map.unique().tolist()) - {0} and present
    assert class_scores.shape == (3,) and torch.isfinite(class_scores).all()


def test_rim_predicts_a_one_class_episode_as_binary_logits(tiny_rim, make_episode):
    logits = tiny_rim.predict(make_episode(shots=2, annotation="scribble"))
    assert logits.shape == (128, 128) and logits.dtype == torch.float32
    assert set(logits.unique().tolist()) <= {-1.0, 1.0}
    assert not math.isnan(logits.sum().item())
