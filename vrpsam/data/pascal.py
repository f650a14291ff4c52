"""PASCAL-5i reader: VOC2012 images with the SBD-augmented ``SegmentationClassAug`` masks.

Expected layout under ``root`` (the VOC2012 folder)::

    JPEGImages/<id>.jpg
    SegmentationClassAug/<id>.png       palette or grey PNG, values = VOC ids 0..20, 255 = boundary
    ImageSets/Segmentation/train.txt    training ids; usually the SBD 'trainaug' list (10582 ids)
    ImageSets/Segmentation/val.txt      VOC2012 val (1449 ids): the pool of test episodes

Fold lists (``lists=``):

* ``"official"``: the PFENet/BAM lists that the official VRP-SAM code uses, shipped as
  ``vrpsam/resources/pascal5i_official.json`` (4208/3726/2752/4510 training and 364/445/592/336 test
  images for folds 0..3), filtered to the images present under ``root``.
* ``"generate"``: lists built from the masks with the rule of PFENet/BAM (see
  :class:`PascalSource`).
* ``"auto"`` (default): ``"official"`` when the tree holds the official ids (any real VOC2012+SBD
  tree), ``"generate"`` when it holds none of them (synthetic trees), so results stay comparable on
  real data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from vrpsam.data.base import IGNORE_INDEX, SPLITS
from vrpsam.data.folds import (
    PASCAL_CLASSES,
    all_classes,
    check_fold,
    class_name,
    novel_classes,
    split_train_val,
)
from vrpsam.data.reading import (
    DatasetError,
    read_id_list,
    read_label_png,
    read_rgb,
    require,
)

logger = logging.getLogger(__name__)

ROOT_HINT = (
    "set data.root to the VOC2012 folder that holds JPEGImages and SegmentationClassAug; "
    "see data/README.md"
)
"""What a user should do when the VOC tree is missing or incomplete."""

LIST_MODES = ("auto", "official", "generate")
PFENET_MIN_PIXELS = 2 * 32 * 32
"""PFENet ``make_dataset`` keeps a class for an image when it covers at least 2*32*32 pixels."""

_VALID_LABELS = np.zeros(256, dtype=bool)
_VALID_LABELS[: len(PASCAL_CLASSES) + 1] = True
_VALID_LABELS[IGNORE_INDEX] = True


def check_label_values(label: np.ndarray, path: Path) -> None:
    """Raise ``DatasetError`` if ``label`` (H, W) holds values other than 0..20 and 255."""
    values = np.unique(label)
    bad = values[~_VALID_LABELS[values]]
    if bad.size:
        raise DatasetError(
            f"mask {path} holds values {bad.tolist()[:8]} outside 0..20 and 255: expected "
            "SegmentationClassAug class ids (0 background, 1..20 VOC classes, 255 boundary); "
            "replace it with the SegmentationClassAug PNG of that image"
        )


def official_lists(path: Path | None = None) -> dict:
    """The shipped PFENet/BAM fold lists: ``{"folds": {"0": {"train": {...}, "val": {...}}, ...}}``.

    ``"val"`` in that file is the test pool (VOC val images holding a novel class of the fold).
    """
    if path is None:
        text = resources.files("vrpsam.resources").joinpath("pascal5i_official.json").read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    return json.loads(text)


def scan_pixel_counts(root: Path, image_ids: Iterable[str]) -> dict[str, dict[int, int]]:
    """Read the masks of ``image_ids`` and count the pixels of each class.

    Returns:
        image id → {VOC id: pixel count} (background and boundary left out).

    Raises:
        DatasetError: a listed image has no JPEG or no mask, or a mask holds unexpected values.
    """
    ids = list(image_ids)
    jpegs = {p.stem for p in (root / "JPEGImages").glob("*.jpg")}
    missing = [i for i in ids if i not in jpegs]
    if missing:
        raise DatasetError(
            f"{len(missing)} listed images have no file in {root / 'JPEGImages'} "
            f"(e.g. {', '.join(missing[:5])}); {ROOT_HINT}"
        )
    counts: dict[str, dict[int, int]] = {}
    for image_id in ids:
        path = root / "SegmentationClassAug" / f"{image_id}.png"
        label = read_label_png(path)
        check_label_values(label, path)
        hist = np.bincount(label.ravel(), minlength=256)[1 : len(PASCAL_CLASSES) + 1]
        counts[image_id] = {c + 1: int(n) for c, n in enumerate(hist) if n}
    return counts


class PascalSource:
    """One split of one PASCAL-5i fold (implements :class:`~vrpsam.data.base.FewShotSource`).

    List generation (``lists="generate"``), after PFENet's ``make_dataset`` and BAM's filter:

    * a class *is present* in an image when it covers at least ``min_pixels`` pixels (PFENet:
      2*32*32);
    * ``train``: ``train.txt`` images; with ``exclude_novel`` (BAM) an image holding *any* pixel of
      a novel class of the fold is dropped, so test classes never appear, not even as background;
    * ``test``: ``val.txt`` images in which a novel class is present;
    * ``val``: a seeded ~``val_fraction`` of the training images (see
      :func:`~vrpsam.data.folds.holdout_images`), removed from ``train``. Official lists are split
      the same way.

    Args:
        root: the VOC2012 folder.
        fold: 0..3.
        split: ``"train"``, ``"val"`` or ``"test"``.
        lists: ``"auto"``, ``"official"`` or ``"generate"`` (see the module docstring).
        novel: the fold's test classes (VOC ids); defaults to PASCAL-5i's ``5f+1..5f+5``.
            COCO→PASCAL passes its re-partitioned folds here (official lists do not apply then).
        min_pixels: pixels a class needs to count as present (generated lists only).
        exclude_novel: BAM's filter on training images (generated lists only).
        val_fraction, val_seed, val_min_per_class: the held-out validation rule.
        train_list, test_list: list files under ``ImageSets/Segmentation``.
        name: dataset name reported by the source.
        official_path: another official-lists JSON (default: the shipped one).
        pixel_counts: precomputed :func:`scan_pixel_counts` result, so several sources over one tree
            read the masks once.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        fold: int,
        split: str,
        lists: str = "auto",
        novel: Sequence[int] | None = None,
        min_pixels: int = PFENET_MIN_PIXELS,
        exclude_novel: bool = True,
        val_fraction: float = 0.1,
        val_seed: int = 0,
        val_min_per_class: int = 2,
        train_list: str = "train.txt",
        test_list: str = "val.txt",
        name: str = "pascal",
        official_path: str | Path | None = None,
        pixel_counts: Mapping[str, Mapping[int, int]] | None = None,
    ) -> None:
        self.fold = check_fold(fold)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if lists not in LIST_MODES:
            raise ValueError(f"lists must be one of {', '.join(LIST_MODES)}, got {lists!r}")
        self.name, self.split = name, split
        self.root = Path(root).expanduser()
        require(self.root, "PASCAL VOC root", ROOT_HINT)
        for sub in ("JPEGImages", "SegmentationClassAug"):
            require(self.root / sub, f"{sub} folder", ROOT_HINT)
        standard = novel is None or tuple(sorted(novel)) == novel_classes("pascal", fold)
        self.novel = tuple(sorted(novel)) if novel is not None else novel_classes("pascal", fold)
        base = tuple(c for c in all_classes("pascal") if c not in self.novel)
        self.classes: tuple[int, ...] = self.novel if split == "test" else base
        if lists == "official" and not standard:
            raise ValueError("official PASCAL-5i lists only exist for the standard folds")
        found = None
        if lists != "generate" and standard:
            found = self._official(official_path, required=lists == "official")
        self.lists = "official" if found is not None else "generated"
        if found is None:
            found = self._generate(min_pixels, exclude_novel, train_list, test_list, pixel_counts)
        by_class, order = found
        if split != "test":
            by_class = split_train_val(
                by_class,
                split,
                fraction=val_fraction,
                seed=val_seed,
                min_per_class=val_min_per_class,
            )
        self._by_class = {c: sorted(by_class.get(c, ())) for c in self.classes}
        members = set().union(*self._by_class.values())
        self._order = [image_id for image_id in order if image_id in members]
        self._present: dict[str, tuple[int, ...]] = {}

    def _official(
        self, path: str | Path | None, *, required: bool
    ) -> tuple[dict[int, list[str]], list[str]] | None:
        entry = official_lists(path)["folds"][str(self.fold)][
            "val" if self.split == "test" else "train"
        ]
        wanted = set(entry["images"])
        present = {p.stem for p in (self.root / "JPEGImages").glob("*.jpg")} & {
            p.stem for p in (self.root / "SegmentationClassAug").glob("*.png")
        }
        found = wanted & present
        if not found:
            if required:
                raise DatasetError(
                    f"none of the {len(wanted)} official fold-{self.fold} images is under "
                    f"{self.root}; "
                    f"{ROOT_HINT} (or use lists='generate' for a tree of your own)"
                )
            logger.info("no official PASCAL-5i ids under %s: generating fold lists", self.root)
            return None
        if len(found) < len(wanted):
            logger.warning(
                "%d of %d official PASCAL-5i fold-%d %s images are missing under %s; using the "
                "rest "
                "(results are not comparable with published numbers)",
                len(wanted) - len(found),
                len(wanted),
                self.fold,
                self.split,
                self.root,
            )
        by_class = {
            int(c): [i for i in ids if i in found] for c, ids in entry["images_by_class"].items()
        }
        return by_class, [i for i in entry["images"] if i in found]

    def _generate(
        self,
        min_pixels: int,
        exclude_novel: bool,
        train_list: str,
        test_list: str,
        pixel_counts: Mapping[str, Mapping[int, int]] | None,
    ) -> tuple[dict[int, list[str]], list[str]]:
        list_name = test_list if self.split == "test" else train_list
        ids = read_id_list(self.root / "ImageSets" / "Segmentation" / list_name, ROOT_HINT)
        if pixel_counts is None or not set(ids) <= pixel_counts.keys():
            pixel_counts = scan_pixel_counts(self.root, ids)
        by_class: dict[int, list[str]] = {c: [] for c in self.classes}
        for image_id in ids:
            counts = pixel_counts[image_id]
            # BAM: a training image that shows a test class at all would leak it into training.
            if self.split != "test" and exclude_novel and any(counts.get(c) for c in self.novel):
                continue
            for c in self.classes:
                if counts.get(c, 0) >= min_pixels:
                    by_class[c].append(image_id)
        return by_class, list(dict.fromkeys(ids))

    def image_ids_by_class(self) -> Mapping[int, Sequence[str]]:
        """Images in which each class of :attr:`classes` is present (sorted lists)."""
        return self._by_class

    def image_ids(self) -> list[str]:
        """All images of this split, sorted."""
        return sorted(set().union(*self._by_class.values()))

    def image_order(self) -> list[str]:
        """The split's images in the order of the fold list (official) or the list file."""
        return list(self._order)

    def classes_present(self, image_id: str) -> tuple[int, ...]:
        """The split's classes with at least one pixel in the image's mask (any size)."""
        if image_id not in self._present:
            values = np.unique(self.load_label(image_id))
            self._present[image_id] = tuple(c for c in self.classes if c in values)
        return self._present[image_id]

    def image_path(self, image_id: str) -> Path:
        """Path of the JPEG of ``image_id``."""
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def load_image(self, image_id: str) -> np.ndarray:
        """RGB ``uint8`` (H, W, 3)."""
        return read_rgb(self.image_path(image_id))

    def load_label(self, image_id: str) -> np.ndarray:
        """The checked class-id map ``uint8`` (H, W): 0 background, 1..20 classes, 255 boundary."""
        path = self.root / "SegmentationClassAug" / f"{image_id}.png"
        label = read_label_png(path)
        check_label_values(label, path)
        return label

    def load_mask(self, image_id: str, class_id: int) -> np.ndarray:
        """``uint8`` (H, W): 1 where the label is ``class_id``, 255 on boundaries, 0 elsewhere."""
        if not 1 <= class_id <= len(PASCAL_CLASSES):
            raise ValueError(f"PASCAL class id must be 1..20, got {class_id}")
        label = self.load_label(image_id)
        mask = (label == class_id).astype(np.uint8)
        mask[label == IGNORE_INDEX] = IGNORE_INDEX
        return mask

    def load_other_objects(self, image_id: str, class_id: int) -> np.ndarray:
        """``bool`` (H, W): pixels of objects of any class other than ``class_id`` (boundaries
        and background excluded)."""
        label = self.load_label(image_id)
        return (label != class_id) & (label != 0) & (label != IGNORE_INDEX)

    def class_name(self, class_id: int) -> str:
        """VOC name of ``class_id``."""
        return class_name("pascal", class_id)

    def __repr__(self) -> str:
        n = len(self.image_ids())
        return (
            f"PascalSource(name={self.name!r}, fold={self.fold}, split={self.split!r}, "
            f"lists={self.lists!r}, classes={self.classes}, images={n}, root={str(self.root)!r})"
        )
