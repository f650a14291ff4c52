"""VRP encoder parts: annotation downsampling, prototype, pseudo-mask, positions, sizes."""

import math

import pytest
import torch
import torch.nn.functional as F

from vrpsam.modeling.vrp_encoder import (
    VRPEncoder,
    downsample_mask,
    masked_average,
    pseudo_mask,
    sine_positions,
)


def twenty_points(size=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, 1, size, size)
    ys = torch.randint(0, size, (20,), generator=g)
    xs = torch.randint(0, size, (20,), generator=g)
    mask[0, 0, ys, xs] = 1
    return mask


def test_point_references_survive_downsampling():
    """Max pooling keeps every clicked cell; nearest (the official choice) keeps almost none."""
    hits_max, hits_nearest = [], []
    for seed in range(20):
        mask = twenty_points(seed=seed)
        hits_max.append(int(downsample_mask(mask, (64, 64), "max").sum()))
        hits_nearest.append(int(downsample_mask(mask, (64, 64), "nearest").sum()))
    assert min(hits_max) >= 18  # two points may share one 8×8 cell
    assert sum(hits_nearest) / len(hits_nearest) < 2  # ~20/64 survive on average


def test_area_downsampling_keeps_point_weight_as_cell_fraction():
    mask = torch.zeros(1, 1, 16, 16)
    mask[0, 0, 3, 3] = 1
    small = downsample_mask(mask, (2, 2), "area")
    assert small[0, 0, 0, 0] == pytest.approx(1 / 64)
    assert small.sum() == pytest.approx(1 / 64)


def test_official_nearest_downsampling_is_plain_nearest_interpolation():
    mask = (torch.rand(2, 1, 512, 512) > 0.7).float()
    expected = F.interpolate(mask, size=(64, 64), mode="nearest")
    assert torch.equal(downsample_mask(mask, (64, 64), "nearest"), expected)


def test_unknown_downsampling_mode_is_refused():
    with pytest.raises(ValueError, match="max"):
        downsample_mask(torch.zeros(1, 1, 8, 8), (2, 2), "bicubic")


def test_prototype_is_masked_mean_with_the_official_epsilon():
    features = torch.arange(8.0).view(1, 2, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    proto = masked_average(features, mask)
    expected = torch.tensor([0 + 3, 4 + 7]) / (2 + 5e-4)
    torch.testing.assert_close(proto.flatten(), expected)


def test_pseudo_mask_scores_the_matching_position_highest_and_background_zero():
    c = 4
    reference = torch.zeros(1, c, 2, 2)
    reference[0, :, 0, 0] = torch.tensor([1.0, 0, 0, 0])
    reference[0, :, 1, 1] = torch.tensor([0, 1.0, 0, 0])  # outside the mask
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    target = torch.zeros(1, c, 2, 2)
    target[0, :, 0, 1] = torch.tensor([2.0, 0, 0, 0])  # same direction as the masked reference
    target[0, :, 1, 0] = torch.tensor([0, 3.0, 0, 0])  # matches only the unmasked reference
    target[0, :, 1, 1] = torch.tensor([1.0, 1.0, 0, 0])
    prior = pseudo_mask(target, reference, mask)
    assert prior[0, 0, 0, 1] == pytest.approx(1.0, abs=1e-5)
    assert prior[0, 0, 1, 0] == pytest.approx(0.0, abs=1e-6)
    assert prior[0, 0, 1, 1] == pytest.approx(1 / math.sqrt(2), abs=1e-5)
    normalised = pseudo_mask(target, reference, mask, minmax=True)
    assert normalised.min() == pytest.approx(0.0, abs=1e-6) and normalised.max() == pytest.approx(
        1.0, abs=1e-5
    )


def test_sine_positions_rows_first_then_columns_detr_style():
    h, w, dim = 3, 5, 8
    pos = sine_positions(h, w, dim).view(h, w, dim)
    y = 2 / (3 + 1e-6) * 2 * math.pi  # row index 1 → cumulative position 2
    x = 4 / (5 + 1e-6) * 2 * math.pi
    assert pos[1, 0, 0] == pytest.approx(math.sin(y), abs=1e-5)
    assert pos[1, 0, 1] == pytest.approx(math.cos(y), abs=1e-5)
    assert pos[1, 0, 2] == pytest.approx(math.sin(y / 10000 ** (2 / 4)), abs=1e-5)
    assert pos[0, 3, 4] == pytest.approx(math.sin(x), abs=1e-5)
    assert torch.equal(pos[:, 0, :4], pos[:, 4, :4])  # row channels ignore the column
    assert torch.equal(pos[0, :, 4:], pos[2, :, 4:])  # column channels ignore the row


def test_prompt_generator_sizes_are_configurable():
    encoder = VRPEncoder(mid_channels=32, num_queries=10, num_heads=8, num_layers=2, dropout=0.0)
    mid = torch.randn(2, 32, 8, 8)
    high = torch.randn(2, 16, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., 2:5, 2:5] = 1
    state = encoder.encode_reference(mid, high, mask)
    prompts = encoder.encode_target(state, torch.randn(2, 32, 8, 8), torch.randn(2, 16, 8, 8))
    assert prompts.shape == (2, 10, 256)
    assert len(encoder.layers) == 2
    assert not any(
        isinstance(m, torch.nn.Linear) and m.out_features > 256 for m in encoder.modules()
    )
