"""Square resize + ImageNet normalisation; masks keep their labels."""

import numpy as np
import pytest
import torch

from vrpsam.data.base import IGNORE_INDEX
from vrpsam.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ResizeNormalize, original_size


@pytest.mark.parametrize("interpolation", ["bilinear", "area"])
def test_image_becomes_normalised_chw_float(interpolation):
    transform = ResizeNormalize(size=64, interpolation=interpolation)
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    image[..., 0] = 255
    out = transform.image(image)
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]] + [
        -m / s for m, s in zip(IMAGENET_MEAN[1:], IMAGENET_STD[1:], strict=True)
    ]
    torch.testing.assert_close(out.mean(dim=(1, 2)), torch.tensor(expected), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("height", "width"), [(30, 50), (700, 900), (512, 512)])
def test_ignore_pixels_survive_mask_resizing(height, width):
    transform = ResizeNormalize(size=128)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 4 : height // 2, width // 4 : width // 2] = 1
    mask[height // 2 : height // 2 + max(height // 20, 4), :] = IGNORE_INDEX
    out = transform.mask(mask)
    assert out.shape == (128, 128) and out.dtype == torch.int64
    assert set(out.unique().tolist()) == {0, 1, IGNORE_INDEX}, "nearest resizing keeps labels"


def test_mask_array_is_uint8():
    out = ResizeNormalize(size=16).mask_array(np.ones((5, 7), dtype=np.uint8))
    assert out.dtype == np.uint8 and out.shape == (16, 16) and out.min() == 1


def test_original_size_is_height_width():
    assert original_size(np.zeros((30, 50, 3))).tolist() == [30, 50]


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="interpolation"):
        ResizeNormalize(interpolation="cubic")
    with pytest.raises(ValueError, match="RGB"):
        ResizeNormalize(size=8).image(np.zeros((4, 4), dtype=np.uint8))
