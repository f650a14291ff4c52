"""Matcher's pure pieces on hand-made cases with known answers."""

import numpy as np
import pytest
import torch

from vrpsam.baselines.matching import (
    Matches,
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


def _unit(*vectors):
    return torch.nn.functional.normalize(torch.tensor(vectors, dtype=torch.float32), dim=-1)


# --- correspondence ----------------------------------------------------------------------------


def test_normalised_patches_are_unit_rows_in_row_major_order():
    tokens = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) + 1
    out = normalised_patches(tokens)
    assert out.shape == (2, 4, 3)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2, 4))
    assert torch.allclose(out[0, 1], torch.nn.functional.normalize(tokens[0, :, 0, 1], dim=0))


def test_a_single_pixel_marks_exactly_the_patch_it_lies_in():
    mask = torch.zeros(1, 12, 12)
    mask[0, 5, 9] = 1  # row 1, column 2 of a 3×3 grid of 4-pixel patches
    fg = touching_patches(mask, (3, 3))
    assert fg.shape == (1, 9)
    assert fg[0].nonzero().flatten().tolist() == [1 * 3 + 2]


def test_a_point_survives_a_grid_that_does_not_divide_the_mask():
    mask = torch.zeros(1, 10, 10)
    mask[0, 9, 0] = 1
    assert touching_patches(mask, (3, 3)).sum() >= 1


def test_reverse_matching_drops_pairs_whose_target_prefers_the_background():
    # Reference: r0 and r1 foreground, r2 background. Forward: r0→t0, r1→t1 (1.8 > 0.6).
    # Reverse over all references: t0→r0 (foreground), t1→r2 (background: dropped).
    reference = _unit([1, 0], [0.6, 0.8], [0, 1])
    target = _unit([1, 0], [0, 1], [-1, 0])
    foreground = torch.tensor([True, True, False])
    matches = bidirectional_matches(reference @ target.t(), foreground)
    assert matches.reference.tolist() == [0]
    assert matches.target.tolist() == [0]
    assert matches.similarity.tolist() == pytest.approx([1.0])


def test_reverse_matching_keeps_pairs_landing_on_any_foreground_patch():
    # t1's reverse partner is r0, not r1 where it came from: still foreground, kept.
    reference = _unit([1, 0], [0.6, 0.8], [-1, 0])
    target = _unit([0.6, 0.8], [1, 0])
    matches = bidirectional_matches(reference @ target.t(), torch.tensor([True, True, False]))
    assert sorted(matches.target.tolist()) == [0, 1]


def test_when_every_reverse_match_misses_the_fallback_keeps_the_forward_pairs():
    reference = _unit([0.8, 0.6], [1, 0])  # r0 foreground, r1 background and closer to t0
    target = _unit([1, 0])
    similarity = reference @ target.t()
    foreground = torch.tensor([True, False])
    kept = bidirectional_matches(similarity, foreground, fallback=True)
    assert (kept.reference.tolist(), kept.target.tolist()) == ([0], [0])
    assert len(bidirectional_matches(similarity, foreground, fallback=False)) == 0


def test_an_empty_foreground_matches_nothing():
    similarity = torch.rand(4, 5)
    assert len(bidirectional_matches(similarity, torch.zeros(4, dtype=torch.bool))) == 0


def test_k_shot_foregrounds_match_as_one_reference_set():
    reference = torch.cat([_unit([1, 0], [0, -1]), _unit([0, 1], [-1, 0])])  # 2 shots × 2
    target = _unit([1, 0], [0, 1], [0.7, -0.7])
    foreground = torch.tensor([True, False, True, False])
    matches = bidirectional_matches(reference @ target.t(), foreground)
    pairs = zip(matches.reference.tolist(), matches.target.tolist(), strict=True)
    assert sorted(pairs) == [(0, 0), (2, 1)]


def _matches(count):
    similarity = torch.linspace(0, 1, count)
    return Matches(torch.arange(count), torch.arange(count) + 100, similarity)


def test_above_forty_matches_only_the_most_similar_half_becomes_points():
    assert len(matched_targets(_matches(40), max_points=1000)) == 40
    top = matched_targets(_matches(41), max_points=1000)
    assert top.tolist() == list(range(140, 120, -1))  # the 20 most similar, best first


def test_matched_points_never_exceed_the_cap():
    assert len(matched_targets(_matches(30), max_points=7)) == 7


def test_patch_centres_map_grid_cells_to_pixel_centres():
    xy = patch_centres(torch.tensor([0, 3]), (2, 2), (8, 8))
    assert xy.tolist() == [[1.5, 1.5], [5.5, 5.5]]


# --- prompts -----------------------------------------------------------------------------------


def test_random_prompt_sets_have_each_size_distinct_in_range_and_sorted():
    groups = sample_prompt_sets(
        20, sizes=(1, 6), draws=64, rng=np.random.default_rng(0), max_sets=10_000
    )
    assert [g.shape[1] for g in groups] == [1, 2, 3, 4, 5, 6]
    assert len(groups[0]) <= 20  # repeated single points are dropped
    for group in groups:
        assert len(group) <= 64
        assert len(np.unique(group, axis=0)) == len(group)
        assert (np.diff(group, axis=1) > 0).all()  # distinct points within a set
        assert group.min() >= 0 and group.max() < 20


def test_few_points_enumerate_every_subset():
    groups = sample_prompt_sets(
        5, sizes=(1, 6), draws=64, rng=np.random.default_rng(0), max_sets=99
    )
    assert [len(g) for g in groups] == [5, 10, 10, 5, 1]  # C(5, k), sizes clipped to 5


def test_prompt_sets_respect_the_cap_and_the_seed():
    def draw(seed):
        rng = np.random.default_rng(seed)
        return sample_prompt_sets(50, sizes=(1, 6), draws=64, rng=rng, max_sets=100)

    groups = draw(1)
    assert sum(len(g) for g in groups) == 100
    assert all(np.array_equal(a, b) for a, b in zip(groups, draw(1), strict=True))
    assert (
        sample_prompt_sets(0, sizes=(1, 6), draws=8, rng=np.random.default_rng(0), max_sets=9) == []
    )


def test_kmeans_pp_finds_two_separated_clusters():
    left = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    points = torch.cat([left, left + 100])
    centres = kmeans_pp(points, 2, np.random.default_rng(0))
    assert sorted(centres.tolist()) == [[0.5, 0.5], [100.5, 100.5]]
    assert len(kmeans_pp(points[:3], 8, np.random.default_rng(0))) == 3


# --- SAM mask filters --------------------------------------------------------------------------


def test_quality_filters_drop_low_iou_unstable_and_empty_masks():
    crisp = torch.full((8, 8), -10.0)
    crisp[2:6, 2:6] = 10.0
    soft = torch.full((8, 8), -0.5)
    soft[2:6, 2:6] = 0.5  # thresholds 0 ± 1 give an empty and a full mask: stability 0
    empty = torch.full((8, 8), -10.0)
    logits = torch.stack([crisp, soft, empty, crisp])
    iou = torch.tensor([0.9, 0.9, 0.9, 0.85])
    keep = quality_keep(logits, iou, iou_thresh=0.85, stability_thresh=0.9)
    assert keep.tolist() == [True, False, False, False]  # the IoU filter is strict
    assert quality_keep(logits, iou, iou_thresh=0, stability_thresh=0).all()


def test_box_nms_keeps_the_best_of_overlapping_masks():
    masks = torch.zeros(3, 40, 40, dtype=torch.bool)
    masks[0, 0:20, 0:20] = True
    masks[1, 1:20, 1:20] = True  # box IoU with mask 0 ≈ 0.9
    masks[2, 30:40, 30:40] = True
    keep = nms_keep(masks, torch.tensor([0.9, 0.95, 0.5]), 0.65)
    assert keep.tolist() == [1, 2]
    assert nms_keep(masks, torch.tensor([0.9, 0.95, 0.5]), 1.0).tolist() == [1, 0, 2]


# --- scores ------------------------------------------------------------------------------------


def test_emd_is_zero_for_identical_features_and_the_mean_cost_otherwise():
    cost = np.array([[0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 0.5]])
    patch_masks = torch.tensor(
        [[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool
    )
    emd = emd_distances(cost, patch_masks, max_size=100, rng=np.random.default_rng(0))
    # {0,1}: transport each reference patch to its twin; {2,3}: every cost is 0.5;
    # {0}: half the mass travels at 0, half at 1; an empty mask gets the largest cost.
    assert emd.tolist() == pytest.approx([0.0, 0.5, 0.5, 1.0])


def test_emd_subsampling_caps_the_problem_size():
    cost = np.full((50, 60), 0.25)
    patch_masks = torch.ones(1, 60, dtype=torch.bool)
    emd = emd_distances(cost, patch_masks, max_size=5, rng=np.random.default_rng(0))
    assert emd.tolist() == pytest.approx([0.25])


def test_purity_and_coverage_count_matched_points_inside_the_mask():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, 0:4, 0:4] = True
    points = torch.tensor([[1.0, 1.0], [2.0, 3.0], [3.2, 0.4], [6.0, 6.0]])  # 3 inside mask 0
    purity, coverage = purity_coverage(points, masks, torch.tensor([4, 0]))
    assert purity.tolist() == pytest.approx([3 / 4 + 1e-6, 1e-6])
    assert coverage.tolist() == pytest.approx([3 / 4 + 1e-6, 1e-6])


def test_score_combines_emd_purity_and_coverage():
    emd, purity, coverage = torch.tensor([0.2]), torch.tensor([0.5]), torch.tensor([0.25])
    assert matcher_scores(emd, purity, coverage, alpha=1, beta=0, exp=0).item() == pytest.approx(
        0.8
    )
    both = matcher_scores(emd, purity, coverage, alpha=0.5, beta=1, exp=2)
    assert both.item() == pytest.approx(0.5 * 0.8 + 0.5 * 0.25**2)


def test_metric_filters_are_relative_to_the_best_mask():
    assert metric_keep(torch.tensor([0.01, 0.5]), 0.02).tolist() == [False, True]
    assert metric_keep(torch.tensor([0.001, 0.01]), 0.02).tolist() == [False, True]
    assert metric_keep(torch.tensor([0.001, 0.01]), 0.0).all()


def test_merging_keeps_the_masks_close_to_the_best():
    scores = torch.tensor([0.9, 0.5, 0.8, 0.88])  # distances 0.1 0.5 0.2 0.12
    assert select_masks(scores, max_masks=9).tolist() == [0, 3]  # 0.2 is 0.2 above: too far
    assert select_masks(scores, max_masks=1).tolist() == [0]
    assert select_masks(torch.tensor([0.1, 0.2]), max_masks=9).tolist() == [1]  # best always
    topk = select_masks(scores, max_masks=2, use_score_filter=False, topk_thresh=0.99)
    assert topk.tolist() == [0]
    assert select_masks(torch.zeros(0), max_masks=3).numel() == 0
