"""The contract between dataset readers and everything that builds episodes from them.

A *source* is one split of one fold of one dataset (PASCAL-5i fold 0 train, COCO-20i fold 2
test, ...). Episode sampling, reference-annotation simulation and the DataModule only ever talk to
this protocol, so the same code serves VOC/SBD trees, COCO trees and the synthetic trees written in
those formats.

Vocabulary: *reference* (the annotated example; "support" in the official code) and *target* (the
image to segment; "query" in the official code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

IGNORE_INDEX = 255
"""Label of pixels that count neither as foreground nor background (VOC/SBD object boundaries)."""

SPLITS = ("train", "val", "test")
"""train: base-class training images; val: held-out base-class images for model selection;
test: novel-class images that the fixed test episodes are drawn from."""


@dataclass(frozen=True)
class Episode:
    """One few-shot episode: segment ``class_id`` in ``target_id`` given ``reference_ids``."""

    target_id: str
    class_id: int
    reference_ids: tuple[str, ...]


@runtime_checkable
class FewShotSource(Protocol):
    """One split of one fold of a few-shot dataset.

    Attributes:
        name: dataset name (``"pascal"``, ``"coco"``, ``"coco2pascal"``).
        fold: fold index, 0..3.
        split: one of :data:`SPLITS`.
        classes: the class ids (1-indexed, as the dataset numbers them) that episodes of this
            split draw from: base classes for ``train``/``val``, novel classes for ``test``.
    """

    name: str
    fold: int
    split: str
    classes: tuple[int, ...]

    def image_ids_by_class(self) -> Mapping[int, Sequence[str]]:
        """Images in which each class of :attr:`classes` is large enough for an episode.

        Lists are sorted, so that seeded sampling does not depend on file-system order.
        """
        ...

    def image_order(self) -> Sequence[str]:
        """The split's images in the order of its list file (the fold's image list), which the
        ``pairs`` and ``images`` test rules cycle through."""
        ...

    def classes_present(self, image_id: str) -> tuple[int, ...]:
        """The classes of :attr:`classes` with at least one pixel in the image, any size (the
        official loaders draw a target's class among these)."""
        ...

    def load_image(self, image_id: str) -> np.ndarray:
        """The image as RGB ``uint8`` of shape (H, W, 3)."""
        ...

    def load_mask(self, image_id: str, class_id: int) -> np.ndarray:
        """The binary mask of ``class_id`` as ``uint8`` (H, W): 1 = class, 0 = anything else,
        :data:`IGNORE_INDEX` = ignored pixels (kept as they are)."""
        ...

    def class_name(self, class_id: int) -> str:
        """Human-readable name of ``class_id``."""
        ...
