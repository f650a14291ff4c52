"""Tiny in-memory :class:`~vrpsam.data.base.FewShotSource` fakes for episode and loader tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vrpsam.data.base import IGNORE_INDEX


@dataclass
class FakeSource:
    """A source whose images are generated on demand from their id (no files).

    Each image ``img{i:03d}`` shows a rectangle of every class listed for it in ``images``, outlined
    by a 2-pixel band of :data:`IGNORE_INDEX`, on a random background. Image sizes vary with the
    index so that original-size handling is exercised.
    """

    images: Mapping[str, Sequence[int]]
    classes: tuple[int, ...]
    name: str = "fake"
    fold: int = 0
    split: str = "test"
    loads: list[str] = field(default_factory=list)

    def image_ids_by_class(self) -> dict[int, list[str]]:
        return {
            c: sorted(i for i, present in self.images.items() if c in present) for c in self.classes
        }

    def image_order(self) -> list[str]:
        return sorted(i for i, present in self.images.items() if set(present) & set(self.classes))

    def classes_present(self, image_id: str) -> tuple[int, ...]:
        return tuple(c for c in self.images[image_id] if c in self.classes)

    def _size(self, image_id: str) -> tuple[int, int]:
        index = int(image_id[3:])
        return 40 + 7 * (index % 5), 50 + 5 * (index % 3)

    def _labels(self, image_id: str) -> np.ndarray:
        height, width = self._size(image_id)
        labels = np.zeros((height, width), dtype=np.uint8)
        for slot, class_id in enumerate(self.images[image_id]):
            top, left = 4 + 3 * slot, 4 + 9 * slot
            labels[top : top + 16, left : left + 20] = IGNORE_INDEX
            labels[top + 2 : top + 14, left + 2 : left + 18] = class_id
        return labels

    def load_image(self, image_id: str) -> np.ndarray:
        self.loads.append(image_id)
        rng = np.random.default_rng(int(image_id[3:]))
        return rng.integers(0, 256, size=(*self._size(image_id), 3), dtype=np.uint8)

    def load_mask(self, image_id: str, class_id: int) -> np.ndarray:
        labels = self._labels(image_id)
        mask = (labels == class_id).astype(np.uint8)
        mask[labels == IGNORE_INDEX] = IGNORE_INDEX
        return mask

    def class_name(self, class_id: int) -> str:
        return f"class{class_id}"


def make_source(
    *,
    classes: Sequence[int] = (1, 2, 3),
    images_per_class: int = 6,
    split: str = "test",
    extra: Mapping[int, int] | None = None,
) -> FakeSource:
    """A fake source: ``images_per_class`` single-class images per class, plus two-class images.

    Args:
        classes: class ids of the split.
        images_per_class: single-class images of each class.
        split: the split name.
        extra: overrides ``images_per_class`` for some classes (e.g. ``{3: 1}`` for a too-small
            class).
    """
    images: dict[str, tuple[int, ...]] = {}
    counts = {c: images_per_class for c in classes}
    counts.update(extra or {})
    for class_id in classes:
        for _ in range(counts[class_id]):
            images[f"img{len(images):03d}"] = (class_id,)
    big = [c for c in classes if counts[c] >= 2]
    for a, b in itertools.pairwise(big):
        images[f"img{len(images):03d}"] = (a, b)
    return FakeSource(images=images, classes=tuple(classes), split=split)
