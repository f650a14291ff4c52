"""Semantic-segmentation scores against confusion matrices computed by hand."""

import math

import pytest
import torch

from vrpsam.baselines.multiclass import choose_threshold
from vrpsam.engine.semantic_metrics import ConfusionMatrix, PresenceCounts, PresencePairs


def test_confusion_matrix_ignores_255_and_gives_standard_miou():
    # Classes 3 and 7 (dataset ids) plus background: rows truth, columns prediction.
    truth = torch.tensor([[0, 0, 3, 3], [7, 7, 255, 255]])
    guess = torch.tensor([[0, 3, 3, 3], [7, 0, 7, 3]])
    metric = ConfusionMatrix(class_ids=[3, 7])
    metric.update(guess, truth)
    out = metric.compute()
    assert out["matrix"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # IoU: background 1/(2+2-1)=1/3, class 3: 2/(2+3-2)=2/3, class 7: 1/(2+1-1)=1/2.
    assert out["iou"].tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert float(out["miou"]) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert float(out["pixel_accuracy"]) == pytest.approx(4 / 6)


def test_a_class_never_present_nor_predicted_is_left_out_of_the_mean():
    metric = ConfusionMatrix(class_ids=[1, 2, 5])
    metric.update(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0]]))
    out = metric.compute()
    iou = out["iou"].tolist()
    assert math.isnan(iou[2]) and math.isnan(iou[3])  # classes 2 and 5: no pixel either side
    assert iou[:2] == pytest.approx([2 / 3, 1 / 2])
    assert float(out["miou"]) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_a_predicted_but_absent_class_scores_zero_and_counts():
    metric = ConfusionMatrix(class_ids=[1, 2])
    metric.update(torch.tensor([[2, 0]]), torch.tensor([[0, 0]]))
    iou = metric.compute()["iou"].tolist()
    assert iou[0] == pytest.approx(0.5) and math.isnan(iou[1]) and iou[2] == 0.0


def test_sharded_updates_sum_to_the_single_process_matrix():
    torch.manual_seed(0)
    truth = torch.randint(0, 4, (6, 9, 9))
    truth[truth == 3] = 255
    guess = torch.randint(0, 3, (6, 9, 9))
    whole = ConfusionMatrix(class_ids=[1, 2])
    halves = [ConfusionMatrix(class_ids=[1, 2]), ConfusionMatrix(class_ids=[1, 2])]
    for i in range(6):
        whole.update(guess[i], truth[i])
        halves[i % 2].update(guess[i], truth[i])
    assert torch.equal(halves[0].matrix + halves[1].matrix, whole.matrix)
    assert whole.matrix.dtype == torch.int64 and int(whole.matrix.sum()) == int(
        (truth != 255).sum()
    )


def test_labels_outside_the_scored_classes_are_refused():
    with pytest.raises(ValueError, match=r"labels outside"):
        ConfusionMatrix(class_ids=[1]).update(torch.tensor([4]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"may not be 0"):
        ConfusionMatrix(class_ids=[0, 1])


def test_false_positive_rate_counts_classes_claimed_in_images_without_them():
    metric = PresenceCounts()
    # Image 1: classes (a, b, c) claimed (1, 1, 0), truly (1, 0, 0): one FP, one TN.
    metric.update(torch.tensor([1, 1, 0]), torch.tensor([1, 0, 0]))
    # Image 2: claimed (0, 1, 1), truly (1, 1, 0): one FN, one FP.
    metric.update(torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0]))
    out = metric.compute()
    assert (out["true_positives"], out["false_positives"]) == (2, 2)
    assert (out["false_negatives"], out["true_negatives"]) == (1, 1)
    assert out["false_positive_rate"] == pytest.approx(2 / 3)
    assert out["accuracy"] == pytest.approx(3 / 6)
    assert out["precision"] == pytest.approx(2 / 4) and out["recall"] == pytest.approx(2 / 3)


def test_no_absent_pair_leaves_the_false_positive_rate_undefined():
    metric = PresenceCounts()
    metric.update(torch.tensor([1, 0]), torch.tensor([1, 1]))
    assert metric.compute()["false_positive_rate"] is None


def test_threshold_separates_the_validation_pairs_whatever_their_order():
    scores = torch.tensor([0.9, 0.2, 0.7, 0.4, 0.35])
    present = torch.tensor([True, False, True, False, False])
    chosen = choose_threshold(scores, present)
    assert 0.4 < chosen["threshold"] < 0.7 and chosen["f1"] == 1.0 and chosen["pairs"] == 5
    assert chosen["auc"] == 1.0  # every present pair above every absent one
    order = torch.tensor([4, 2, 0, 3, 1])
    assert choose_threshold(scores[order], present[order]) == chosen


def test_threshold_trades_off_by_f1_when_the_pairs_overlap():
    scores = torch.tensor([0.9, 0.8, 0.6, 0.5, 0.1])
    present = torch.tensor([True, False, True, False, False])
    chosen = choose_threshold(scores, present)
    # Claim the top 3: TP 2, FP 1 → F1 0.8; the top 1: F1 2/3; the top 4: F1 2/3.
    assert chosen["f1"] == pytest.approx(0.8) and 0.5 < chosen["threshold"] < 0.6
    # 0.9 beats the three absent pairs, 0.6 two of them (not 0.8): 5 of 6 comparisons.
    assert chosen["auc"] == pytest.approx(5 / 6)


def test_auc_counts_ties_half_and_needs_both_kinds_of_pair():
    tied = choose_threshold(torch.tensor([0.5, 0.5, 0.7]), torch.tensor([True, False, False]))
    assert tied["auc"] == pytest.approx(0.25)  # one tie (half), one loss
    only_present = choose_threshold(torch.tensor([0.5, 0.7]), torch.tensor([True, True]))
    assert only_present["auc"] is None


def test_presence_pairs_gather_every_update():
    pairs = PresencePairs()
    pairs.update(torch.zeros(0), torch.zeros(0))
    pairs.update(torch.tensor([0.3, 0.6]), torch.tensor([False, True]))
    scores, present = pairs.compute()
    assert scores.tolist() == pytest.approx([0.3, 0.6]) and present.tolist() == [False, True]
    with pytest.raises(ValueError, match=r"no validation pairs"):
        choose_threshold(torch.zeros(0), torch.zeros(0, dtype=torch.bool))
