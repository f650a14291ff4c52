"""Build a :class:`~vrpsam.data.base.FewShotSource` from a dataset name (CLI, DataModule, Hydra)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrpsam.data.base import FewShotSource
from vrpsam.data.coco import CocoSource
from vrpsam.data.folds import all_classes, base_classes, check_fold, novel_classes
from vrpsam.data.fss import FssSource
from vrpsam.data.lvis import LvisSource
from vrpsam.data.pascal import PascalSource


def _pascal(root: str | Path, fold: int, split: str, **options: Any) -> FewShotSource:
    return PascalSource(root=root, fold=fold, split=split, **options)


def _coco(root: str | Path, fold: int, split: str, **options: Any) -> FewShotSource:
    return CocoSource(root=root, fold=fold, split=split, **options)


def _coco2pascal(
    root: str | Path,
    fold: int,
    split: str,
    *,
    pascal_root: str | Path | None = None,
    **options: Any,
) -> FewShotSource:
    """COCO→PASCAL: ``train``/``val`` from COCO (``root``) without the classes of the fold's PASCAL
    test classes; ``test`` from PASCAL VOC val (``pascal_root``, or ``root`` when not given, so
    that a test-only caller may pass the VOC folder as ``root``) with the re-partitioned classes.
    ``options`` go to the split's reader (CocoSource for train/val, PascalSource for test)."""
    check_fold(fold)
    if split == "test":
        return PascalSource(
            root=pascal_root if pascal_root is not None else root,
            fold=fold,
            split="test",
            novel=novel_classes("coco2pascal", fold),
            lists="generate",  # the official lists belong to PASCAL-5i's partition, not this one
            name="coco2pascal",
            **options,
        )
    kept = set(base_classes("coco2pascal", fold))
    withheld = tuple(c for c in all_classes("coco") if c not in kept)
    return CocoSource(
        root=root, fold=fold, split=split, novel=withheld, name="coco2pascal", **options
    )


def _fss1000(root: str | Path, fold: int, split: str, **options: Any) -> FewShotSource:
    return FssSource(root=root, fold=fold, split=split, **options)


def _lvis92i(root: str | Path, fold: int, split: str, **options: Any) -> FewShotSource:
    return LvisSource(root=root, fold=fold, split=split, **options)


SOURCE_BUILDERS: dict[str, Callable[..., FewShotSource]] = {
    "pascal": _pascal,
    "coco": _coco,
    "coco2pascal": _coco2pascal,
    "fss1000": _fss1000,
    "lvis92i": _lvis92i,
}
"""Dataset name → ``builder(root, fold, split, **options)``."""

SIZE_THRESHOLD_KEYWORDS: dict[str, str | None] = {
    "pascal": "min_pixels",
    "coco": "min_area",
    "coco2pascal": "min_area",  # its test split is PASCAL's: see size_threshold_keyword
    "fss1000": None,  # every image of a class is listed: no threshold
    "lvis92i": "min_area",
}
"""Dataset name → the keyword of its reader's size threshold (pixels a class needs in an image for
the image to be listed for it), None where the reader has none."""


def size_threshold_keyword(dataset: str, split: str) -> str | None:
    """The size-threshold keyword of the reader of ``split`` of ``dataset`` (see
    :data:`SIZE_THRESHOLD_KEYWORDS`); None for a reader without one."""
    if dataset == "coco2pascal" and split == "test":
        return "min_pixels"  # read by PascalSource
    return SIZE_THRESHOLD_KEYWORDS[dataset]


SHOT_DEPENDENT = frozenset({"lvis92i"})
"""Datasets whose fold lists depend on the shot (LVIS-92i: classes in more than ``shot`` images):
their readers take ``shot=``."""


def build_source(
    dataset: str, root: str | Path, fold: int, split: str, **options: Any
) -> FewShotSource:
    """The ``split`` of ``fold`` of ``dataset``.

    Args:
        dataset: ``"pascal"``, ``"coco"``, ``"coco2pascal"``, ``"fss1000"`` or ``"lvis92i"``.
        root: the dataset folder (``data.root``): VOC2012 for ``pascal``, COCO for ``coco`` and for
            ``coco2pascal`` (whose PASCAL test split reads ``pascal_root=``, else ``root``), the
            FSS-1000 class folders' parent, the COCO 2017 + LVIS v1 folder.
        fold: 0..3 (0..9 for ``lvis92i``, 0 for ``fss1000``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        **options: keyword arguments of the dataset's reader (:class:`PascalSource`,
            :class:`CocoSource`, :class:`FssSource`, :class:`LvisSource`: ``min_pixels``,
            ``min_area``, ``lists``, ``shot``, ...).

    Raises:
        ValueError: an unknown dataset, a fold the dataset lacks or an unknown split.
    """
    if dataset not in SOURCE_BUILDERS:
        raise ValueError(f"dataset must be one of {', '.join(SOURCE_BUILDERS)}, got {dataset!r}")
    check_fold(fold, dataset)
    return SOURCE_BUILDERS[dataset](root, fold, split, **options)


@dataclass(frozen=True)
class SourceFactory:
    """``factory(split)`` → the source of that split of one dataset fold (picklable)."""

    dataset: str
    root: str
    fold: int
    options: dict = field(default_factory=dict)

    def __call__(self, split: str) -> FewShotSource:
        return build_source(self.dataset, self.root, self.fold, split, **self.options)
