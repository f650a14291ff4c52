"""FewShotIoU against hand-computed values, with ignore pixels, and its reduction semantics."""

import pytest
import torch

from vrpsam.engine.metrics import FewShotIoU, intersection_union


def test_intersection_union_ignores_255():
    pred = torch.tensor([[1, 1, 0], [0, 1, 0]])
    target = torch.tensor([[1, 255, 0], [1, 1, 255]])
    iu = intersection_union(pred, target)
    # valid pixels: (0,0) p1 t1, (0,2) p0 t0, (1,0) p0 t1, (1,1) p1 t1
    assert iu[1].tolist() == [2, 3]  # fg: I = 2, U = 3
    assert iu[0].tolist() == [1, 2]  # bg: I = 1, U = 2


def test_miou_sums_intersections_and_unions_per_class_before_dividing():
    metric = FewShotIoU(class_ids=[1, 2])
    # class 1: episode A perfect on 16 px (IoU 1), episode B I = 1, U = 4 (IoU 0.25):
    # summed (16 + 1) / (16 + 4) = 0.85, not the per-episode mean 0.625.
    metric.update([torch.ones(4, 4)], [torch.ones(4, 4, dtype=torch.long)], [1])
    metric.update([torch.tensor([[1, 0], [0, 0]])], [torch.ones(2, 2, dtype=torch.long)], [1])
    # class 2: I = 0, U = 1 + 3 (prediction on background)
    t2 = torch.tensor([[1, 0], [0, 0]])
    p2 = torch.tensor([[0, 1], [1, 1]])
    metric.update([p2], [t2], [2])
    out = metric.compute()
    assert out["per_class_iou"].tolist() == pytest.approx([17 / 20, 0.0])
    assert out["miou"].item() == pytest.approx((17 / 20 + 0) / 2)
    assert out["episodes"].item() == 3
    # FB-IoU from totals: fg I = 16+1+0, U = 16+4+4; bg I = 0+0+0, U = 0+3+4
    assert out["fbiou"].item() == pytest.approx((17 / 24 + 0 / 7) / 2)


def test_variable_size_episodes_and_unseen_classes():
    metric = FewShotIoU(class_ids=[3, 4, 5])
    metric.update([torch.ones(3, 5)], [torch.ones(3, 5, dtype=torch.long)], [4])
    out = metric.compute()
    assert torch.isnan(out["per_class_iou"][0]) and out["per_class_iou"][1] == 1.0
    assert out["miou"].item() == 1.0  # classes without episodes are left out of the mean


def test_unknown_class_is_refused():
    metric = FewShotIoU(class_ids=[1])
    with pytest.raises(ValueError, match="not among"):
        metric.update([torch.ones(2, 2)], [torch.ones(2, 2, dtype=torch.long)], [7])


def test_merging_two_shards_equals_one_pass():
    """What DDP's sum-reduction does: states add up, so sharded evaluation equals one process."""
    g = torch.Generator().manual_seed(0)
    preds = [torch.rand(8, 8, generator=g) > 0.5 for _ in range(10)]
    targets = [(torch.rand(8, 8, generator=g) > 0.4).long() for _ in range(10)]
    classes = [1 + i % 3 for i in range(10)]
    whole = FewShotIoU(class_ids=[1, 2, 3])
    whole.update(preds, targets, classes)
    a, b = FewShotIoU(class_ids=[1, 2, 3]), FewShotIoU(class_ids=[1, 2, 3])
    a.update(preds[::2], targets[::2], classes[::2])
    b.update(preds[1::2], targets[1::2], classes[1::2])
    a.merge_state(b)
    for key in ("miou", "fbiou"):
        assert a.compute()[key].item() == pytest.approx(whole.compute()[key].item())
