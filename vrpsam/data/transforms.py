"""Resize to a square and normalise with ImageNet statistics; no augmentation (the paper recipe).

Images are resized bilinearly (or with area averaging) and normalised; masks are resized with
nearest neighbour so the labels 0/1/255 survive unchanged. The original size is returned alongside,
and the caller keeps the original-size target mask, because scores are computed at the original
resolution.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = ("bilinear", "area")


class ResizeNormalize:
    """Square resize + ImageNet normalisation for images, nearest-neighbour square resize for masks.

    Args:
        size: side ``S`` of the output square (the official code uses 512).
        interpolation: ``"bilinear"`` (the paper's torchvision ``Resize``) or ``"area"`` (area
            averaging when shrinking, which aliases less on large COCO images).
        mean: per-channel mean of images scaled to [0, 1].
        std: per-channel standard deviation of images scaled to [0, 1].
    """

    def __init__(
        self,
        *,
        size: int = 512,
        interpolation: str = "bilinear",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}.")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}."
            )
        self.size = size
        self.interpolation = interpolation
        self._image = A.Compose(
            [
                A.Resize(
                    height=size,
                    width=size,
                    interpolation=cv2.INTER_LINEAR,
                    area_for_downscale="image" if interpolation == "area" else None,
                ),
                A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
            ]
        )

    def image(self, image: np.ndarray) -> torch.Tensor:
        """Resize and normalise an image.

        Args:
            image: (H, W, 3) ``uint8`` RGB.

        Returns:
            (3, S, S) ``float32`` tensor.
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"Expected an (H, W, 3) RGB image, got shape {image.shape}.")
        out = self._image(image=np.ascontiguousarray(image))["image"]
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))

    def mask(self, mask: np.ndarray) -> torch.Tensor:
        """Resize a label mask with nearest neighbour, keeping its values (0/1/255).

        Args:
            mask: (H, W) integer mask.

        Returns:
            (S, S) ``int64`` tensor.
        """
        return torch.from_numpy(self.mask_array(mask).astype(np.int64))

    def mask_array(self, mask: np.ndarray) -> np.ndarray:
        """Like :meth:`mask` but returns the (S, S) ``uint8`` array (for annotation simulation)."""
        if mask.ndim != 2:
            raise ValueError(f"Expected an (H, W) mask, got shape {mask.shape}.")
        # cv2's INTER_NEAREST samples floor(i * scale) like torch's "nearest" in the official code.
        source = np.ascontiguousarray(mask, dtype=np.uint8)
        return cv2.resize(source, (self.size, self.size), interpolation=cv2.INTER_NEAREST)


def original_size(image: np.ndarray) -> torch.Tensor:
    """The (H, W) of an (H, W, C) or (H, W) array, as an ``int64`` tensor of shape (2,)."""
    return torch.tensor(image.shape[:2], dtype=torch.int64)
