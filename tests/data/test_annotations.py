"""Reference annotation simulation: point, scribble, box and mask from a ground-truth mask."""

import numpy as np
import pytest

from vrpsam.data.annotations import (
    ANNOTATION_KINDS,
    MAX_CLICKS,
    annotation_rng,
    simulate_annotation,
)
from vrpsam.data.base import IGNORE_INDEX


def _blob_mask(seed: int = 0, size: int = 96) -> np.ndarray:
    """An irregular object with an ignore band through it and ignore pixels outside it."""
    yy, xx = np.mgrid[:size, :size]
    rng = np.random.default_rng(seed)
    cy, cx = rng.integers(30, size - 30, size=2)
    mask = (((yy - cy) / 25.0) ** 2 + ((xx - cx) / 18.0) ** 2 < 1).astype(np.uint8)
    mask[cy - 1 : cy + 2] = np.where(mask[cy - 1 : cy + 2] == 1, IGNORE_INDEX, 0)
    mask[:3, :] = IGNORE_INDEX
    return mask


def _tiny_mask(area: int) -> np.ndarray:
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask.flat[np.arange(area) * 7 + 100] = 1
    return mask


@pytest.mark.parametrize("kind", ["point", "scribble", "mask"])
@pytest.mark.parametrize("training", [True, False])
def test_annotations_are_binary_subsets_of_foreground(kind, training):
    for seed in range(10):
        mask = _blob_mask(seed)
        out = simulate_annotation(mask, kind, rng=annotation_rng(seed), training=training)
        assert out.dtype == np.uint8 and out.shape == mask.shape
        assert set(np.unique(out).tolist()) <= {0, 1}
        assert out.any()
        assert not out[mask != 1].any(), "annotation leaks onto background or ignore pixels"


def test_training_points_count_between_one_and_twenty():
    counts = [
        int(simulate_annotation(_blob_mask(), "point", rng=annotation_rng(s), training=True).sum())
        for s in range(200)
    ]
    assert min(counts) >= 1 and max(counts) <= MAX_CLICKS
    assert len(set(counts)) > 10, "training point counts should vary"


@pytest.mark.parametrize("area", [1, 5, 19, 20, 21, 120])
def test_test_time_points_are_exactly_min_20_area(area):
    mask = _tiny_mask(area)
    for seed in range(5):
        out = simulate_annotation(mask, "point", rng=annotation_rng(seed), training=False)
        assert out.sum() == min(MAX_CLICKS, area)


@pytest.mark.parametrize("area", [1, 3])
def test_training_points_on_tiny_objects_stay_within_area(area):
    for seed in range(20):
        out = simulate_annotation(
            _tiny_mask(area), "point", rng=annotation_rng(seed), training=True
        )
        assert 1 <= out.sum() <= area


def test_scribbles_are_nonempty_on_thin_objects():
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:54, 31] = 1  # one-pixel-wide line: strokes mostly drift off it
    for seed in range(30):
        out = simulate_annotation(mask, "scribble", rng=annotation_rng(seed), training=False)
        assert out.any() and not out[mask != 1].any()


def test_scribbles_are_strokes_not_just_points():
    sizes = [
        int(
            simulate_annotation(
                _blob_mask(), "scribble", rng=annotation_rng(s), training=True
            ).sum()
        )
        for s in range(20)
    ]
    assert np.median(sizes) > 2 * MAX_CLICKS


def test_box_is_the_filled_tight_bounding_box():
    mask = np.zeros((40, 50), dtype=np.uint8)
    mask[5, 7] = 1
    mask[20, 30] = 1
    mask[12, 20] = IGNORE_INDEX
    mask[35, 45] = IGNORE_INDEX  # ignore pixels outside the object do not widen the box
    out = simulate_annotation(mask, "box", rng=annotation_rng(0), training=False)
    expected = np.zeros_like(mask)
    expected[5:21, 7:31] = 1
    np.testing.assert_array_equal(out, expected)


def test_mask_is_the_mask_without_ignore_pixels():
    mask = _blob_mask()
    out = simulate_annotation(mask, "mask", rng=annotation_rng(0), training=True)
    np.testing.assert_array_equal(out, (mask == 1).astype(np.uint8))


@pytest.mark.parametrize("kind", ANNOTATION_KINDS)
def test_same_seed_gives_same_annotation(kind):
    mask = _blob_mask(3)
    first = simulate_annotation(mask, kind, rng=annotation_rng(7, 1, 2), training=False)
    again = simulate_annotation(mask, kind, rng=annotation_rng(7, 1, 2), training=False)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("kind", ["point", "scribble"])
def test_different_episodes_get_different_annotations(kind):
    mask = _blob_mask(3)
    first = simulate_annotation(mask, kind, rng=annotation_rng(7, 1), training=False)
    other = simulate_annotation(mask, kind, rng=annotation_rng(7, 2), training=False)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("kind", ANNOTATION_KINDS)
def test_empty_foreground_is_a_clear_error(kind):
    mask = np.full((8, 8), IGNORE_INDEX, dtype=np.uint8)
    mask[0, 0] = 0
    with pytest.raises(ValueError, match="no foreground"):
        simulate_annotation(mask, kind, rng=annotation_rng(0), training=True)


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match="scribble"):
        simulate_annotation(_blob_mask(), "polygon", rng=annotation_rng(0), training=True)


def test_label_maps_are_rejected():
    labels = np.zeros((8, 8), dtype=np.uint8)
    labels[2:4, 2:4] = 15
    labels[5, 5] = 1
    with pytest.raises(ValueError, match="label map"):
        simulate_annotation(labels, "mask", rng=annotation_rng(0), training=True)
