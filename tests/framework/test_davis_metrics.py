"""The DAVIS protocol's J and F, computed by hand on small masks, and the object merge rule."""

import numpy as np
import pytest
import torch

from vrpsam.engine.davis_metrics import (
    DavisScores,
    boundary_f_measure,
    boundary_tolerance,
    merge_objects,
    region_similarity,
    seg2bmap,
)


def square(y0, y1, x0, x1, size=100):
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_a_boundary_is_the_one_pixel_ring_offset_towards_the_origin():
    edge = seg2bmap(square(10, 20, 10, 20))
    ring = square(9, 20, 9, 20) & ~square(10, 19, 10, 19)
    assert edge.sum() == 40
    np.testing.assert_array_equal(edge, ring)


def test_the_tolerance_is_a_share_of_the_diagonal_rounded_up():
    assert boundary_tolerance((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert boundary_tolerance((100, 100)) == 2  # ceil(1.13)
    assert boundary_tolerance((100, 100), bound_th=3) == 3  # ≥ 1: pixels


def test_a_shifted_square_within_the_tolerance():
    gt, pred = square(10, 20, 10, 20), square(10, 20, 12, 22)
    assert region_similarity(pred, gt) == pytest.approx(80 / 120)
    assert boundary_f_measure(pred, gt) == pytest.approx(1.0)  # 2 px shift, 2 px tolerance


def test_a_wider_prediction_by_hand_at_one_pixel_tolerance():
    # gt ring 40 px, prediction ring 80 px; with a 4-neighbour disk 33 of each match:
    # the shared left column and rows (22 + 9 gt, 22 + 9 + 2 pred), the gt's right column ends.
    gt, pred = square(10, 20, 10, 20), square(10, 20, 10, 40)
    precision, recall = 33 / 80, 33 / 40
    assert region_similarity(pred, gt) == pytest.approx(1 / 3)
    expected = 2 * precision * recall / (precision + recall)
    assert boundary_f_measure(pred, gt, bound_th=1) == pytest.approx(expected)
    assert expected == pytest.approx(0.55)


def test_an_empty_prediction_scores_zero():
    gt, empty = square(10, 20, 10, 20), np.zeros((100, 100), bool)
    assert region_similarity(empty, gt) == 0.0
    assert boundary_f_measure(empty, gt) == 0.0


def test_an_object_that_left_the_frame():
    empty = np.zeros((100, 100), bool)
    assert region_similarity(empty, empty) == 1.0  # davis2017-evaluation: empty ∪ empty → 1
    assert boundary_f_measure(empty, empty) == 1.0
    ghost = square(40, 50, 40, 50)
    assert region_similarity(ghost, empty) == 0.0
    assert boundary_f_measure(ghost, empty) == 0.0


def test_far_apart_masks_score_zero():
    gt, pred = square(10, 20, 10, 20), square(10, 20, 60, 70)
    assert region_similarity(pred, gt) == 0.0
    assert boundary_f_measure(pred, gt) == 0.0


def test_merge_highest_score_wins_and_absent_stays_absent():
    logits = torch.tensor(
        [
            [[2.0, 1.0, -1.0, -3.0]],  # object 1
            [[1.0, 3.0, -2.0, -1.0]],  # object 3
            [[-5.0, -5.0, -5.0, -5.0]],  # object 7: negative everywhere
        ]
    )
    label = merge_objects(logits, [1, 3, 7])
    assert label.tolist() == [[1, 3, 0, 0]]
    assert label.dtype == torch.uint8
    assert not (label == 7).any()


def test_scores_are_means_per_object_then_over_objects_and_sum_exactly():
    whole = DavisScores(num_sequences=2)
    halves = [DavisScores(num_sequences=2), DavisScores(num_sequences=2)]
    frames = {(0, 1): [(1.0, 0.5), (0.5, 0.5)], (0, 2): [(0.0, 0.0)], (1, 1): [(0.8, 0.6)] * 3}
    for (sequence, obj), values in frames.items():
        for metric in (whole, halves[sequence]):
            metric.mark(sequence, [1, 2] if sequence == 0 else [1], 2 if sequence == 0 else 3)
            for j, f in values:
                metric.update(sequence, obj, j, f)
    result = whole.compute()
    assert float(result["j_mean"]) == pytest.approx((0.75 + 0.0 + 0.8) / 3)
    assert float(result["f_mean"]) == pytest.approx((0.5 + 0.0 + 0.6) / 3)
    # A sharded run: each process holds its sequences' sums; summing the states is exact.
    for name in ("j_sum", "f_sum", "counts", "objects", "frames"):
        total = getattr(halves[0], name) + getattr(halves[1], name)
        torch.testing.assert_close(total, getattr(whole, name), rtol=0, atol=0)


def test_a_single_sequence_is_summarised():
    # torchmetrics squeezes one-element results: the frame count of one sequence came back 0-dim.
    from vrpsam.engine.video_module import summarise

    scores = DavisScores(num_sequences=1)
    scores.mark(0, [1], 2)
    for _ in range(2):
        scores.update(0, 1, 0.5, 0.25)
    result = summarise(scores.compute(), ["bear"])
    assert result["sequences"] == 1 and result["frames_scored"] == 2 and result["objects"] == 1
    assert result["jf_mean"] == pytest.approx(37.5)
    assert result["per_sequence"][0]["jf_mean"] == pytest.approx(37.5)
