"""LVIS-92i reader, Matcher's protocol (implements :class:`~vrpsam.data.base.FewShotSource`).

Expected layout under ``root``::

    train2017/<12 digits>.jpg               COCO 2017 images
    val2017/<12 digits>.jpg
    annotations/lvis_v1_train.json          raw LVIS v1 annotations
    annotations/lvis_v1_val.json

LVIS v1 image entries carry ``coco_url`` (``http://images.cocodataset.org/val2017/<id>.jpg``),
not ``file_name``; :func:`lvis_file_name` resolves an entry to ``val2017/<id>.jpg`` (and some
images of the *val* json live in ``train2017``: the url says so). The json is read with
pycocotools (LVIS v1 is COCO-format) into the cached index of :mod:`vrpsam.data.coco_index`.

Folds (Matcher's LVIS-92i): the classes (LVIS category ids, sorted: Matcher's pickles, which fix
its order, are not published) that appear in more than ``shot`` images of the val json; fold ``f``
= classes ``f, f + 10, f + 20, ...`` of that list, ``len // 10`` of them (92 for the real 1-shot
list), so the last ``len % 10`` classes belong to no fold. ``test`` = val-json images of the fold's
classes; ``train`` = train-json images of every other class (Matcher's training classes), minus a
seeded ~10% hold-out that forms ``val``. Target mask = union of the class's instances. Any object
size counts (``min_area=1``), as in Matcher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import numpy as np

from vrpsam.data.base import SPLITS
from vrpsam.data.coco_index import load_index, rle_decode
from vrpsam.data.folds import FOLD_COUNTS, check_fold, split_train_val
from vrpsam.data.reading import DatasetError, read_rgb, require

ROOT_HINT = (
    "set data.root to the folder that holds train2017, val2017 and annotations/lvis_v1_*.json "
    "(COCO 2017 images with the LVIS v1 annotations); see data/README.md"
)
"""What a user should do when the LVIS tree is missing or incomplete."""

NUM_FOLDS = FOLD_COUNTS["lvis92i"]


def lvis_file_name(entry: Mapping) -> str:
    """The image's path under the root: the last two parts of ``coco_url`` (``val2017/<id>.jpg``),
    or ``file_name`` for jsons that carry one (LVIS v0.5).

    Raises:
        DatasetError: the entry has neither.
    """
    url = entry.get("coco_url")
    if url:
        parts = PurePosixPath(urlparse(url).path).parts
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
    if entry.get("file_name"):
        return str(entry["file_name"])
    raise DatasetError(
        f"LVIS image entry {entry.get('id')!r} has neither coco_url nor file_name; use the raw "
        "LVIS v1 annotation files"
    )


def load_lvis_index(root: Path, which: str, cache_dir: str | Path | None = None) -> dict:
    """The cached index (:mod:`vrpsam.data.coco_index`) of ``annotations/lvis_v1_<which>.json``;
    image file names resolved from ``coco_url``, class ids = LVIS category ids."""
    json_path = root / "annotations" / f"lvis_v1_{which}.json"
    index, _ = load_index(
        json_path,
        root,
        cache_dir=cache_dir,
        root_hint=ROOT_HINT,
        class_of=_IdentityClasses(),
        file_name_of=lvis_file_name,
        missing_hint=f"extract the COCO 2017 images the LVIS json names. {ROOT_HINT}",
    )
    return index


class _IdentityClasses(dict):
    """Category id → class id for LVIS: the category id itself (1..1203), whatever the json."""

    def __missing__(self, key: int) -> int:
        return key

    def __contains__(self, key: object) -> bool:
        return True


def _image_counts(index: Mapping) -> dict[int, int]:
    counts: dict[int, int] = {}
    for entry in index["images"].values():
        for key, region in entry["classes"].items():
            if region["area"] + region["area_crowd"] > 0:
                counts[int(key)] = counts.get(int(key), 0) + 1
    return counts


def fold_classes(val_index: Mapping, fold: int, shot: int) -> tuple[int, ...]:
    """The test classes of ``fold``: Matcher's every-tenth rule over the sorted category ids that
    appear in more than ``shot`` images of the val json."""
    check_fold(fold, "lvis92i")
    counts = _image_counts(val_index)
    eligible = sorted(c for c, n in counts.items() if n > shot)
    per_fold = len(eligible) // NUM_FOLDS
    return tuple(sorted(eligible[fold + NUM_FOLDS * v] for v in range(per_fold)))


class LvisSource:
    """One split of one LVIS-92i fold.

    Args:
        root: the folder of ``train2017``, ``val2017`` and ``annotations``.
        fold: 0..9.
        split: ``"train"``, ``"val"`` or ``"test"``.
        shot: the run's shot: a class enters the fold lists when it appears in more than ``shot``
            val images (Matcher's rule, so the folds of 1-shot and 5-shot differ slightly).
        min_area: pixels the class needs in an image for the image to enter the class's list.
        exclude_novel: drop training images that hold a class of the fold's test classes.
        val_fraction, val_seed, val_min_per_class: the hold-out rule
            (:func:`~vrpsam.data.folds.holdout_images`).
        cache_dir: index cache folder used when ``root/annotations`` is read-only.
        name: dataset name reported by the source.
        indexes: preloaded indexes ``{"train": ..., "val": ...}`` (:func:`load_lvis_index`) so
            that several sources share them.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        fold: int,
        split: str,
        shot: int = 1,
        min_area: int = 1,
        exclude_novel: bool = False,
        val_fraction: float = 0.1,
        val_seed: int = 0,
        val_min_per_class: int = 2,
        cache_dir: str | Path | None = None,
        name: str = "lvis92i",
        indexes: Mapping[str, Mapping] | None = None,
    ) -> None:
        self.fold = check_fold(fold, "lvis92i")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.name, self.split = name, split
        self.root = Path(root).expanduser()
        require(self.root, "LVIS root", ROOT_HINT)
        indexes = dict(indexes or {})

        def index_of(which: str) -> Mapping:
            if which not in indexes:
                indexes[which] = load_lvis_index(self.root, which, cache_dir)
            return indexes[which]

        val_index = index_of("val")
        self.novel = fold_classes(val_index, fold, shot)
        if not self.novel:
            raise DatasetError(
                f"{self.root}: fewer than {NUM_FOLDS} LVIS classes appear in more than {shot} val "
                f"images, so fold {fold} has no test class; {ROOT_HINT}"
            )
        index = val_index if split == "test" else index_of("train")
        self._images = index["images"]
        self._names = {int(k): v for k, v in index.get("categories", {}).items()}
        self._names.update({int(k): v for k, v in val_index.get("categories", {}).items()})
        novel = set(self.novel)
        if split == "test":
            self.classes: tuple[int, ...] = self.novel
        else:
            self.classes = tuple(sorted(set(_image_counts(index)) - novel))
        by_class: dict[int, list[str]] = {c: [] for c in self.classes}
        for stem, entry in sorted(self._images.items()):
            present = {int(k): r for k, r in entry["classes"].items()}
            if split != "test" and exclude_novel and novel & present.keys():
                continue
            for c, region in present.items():
                if c in by_class and region["area"] + region["area_crowd"] >= min_area:
                    by_class[c].append(stem)
        if split != "test":
            by_class = split_train_val(
                by_class, split, fraction=val_fraction, seed=val_seed,
                min_per_class=val_min_per_class,
            )  # fmt: skip
        self._by_class = {c: sorted(by_class.get(c, ())) for c in self.classes}

    def image_ids_by_class(self) -> Mapping[int, Sequence[str]]:
        """Images of each class (sorted lists)."""
        return self._by_class

    def image_order(self) -> list[str]:
        """The split's images by file name (LVIS has no list order of its own)."""
        return sorted(set().union(*self._by_class.values()))

    def classes_present(self, image_id: str) -> tuple[int, ...]:
        """The split's classes with at least one pixel in the image."""
        present = self._entry(image_id)["classes"]
        return tuple(c for c in self.classes if str(c) in present)

    def _entry(self, image_id: str) -> Mapping:
        try:
            return self._images[image_id]
        except KeyError:
            raise KeyError(f"{image_id!r} is not in the LVIS {self.split} json") from None

    def image_path(self, image_id: str) -> Path:
        """Path of the JPEG of ``image_id`` (resolved from its ``coco_url``)."""
        return self.root / self._entry(image_id)["file_name"]

    def load_image(self, image_id: str) -> np.ndarray:
        """RGB ``uint8`` (H, W, 3)."""
        return read_rgb(self.image_path(image_id))

    def load_mask(self, image_id: str, class_id: int) -> np.ndarray:
        """``uint8`` (H, W): 1 on the union of the class's instances, 0 elsewhere."""
        entry = self._entry(image_id)
        height, width = entry["height"], entry["width"]
        mask = np.zeros((height, width), np.uint8)
        region = entry["classes"].get(str(class_id))
        if region is not None:
            for key in ("rle", "crowd_rle"):  # LVIS has no crowd regions; kept if a json has
                if region[key] is not None:
                    mask[rle_decode(region[key], height, width)] = 1
        return mask

    def class_name(self, class_id: int) -> str:
        """The LVIS category name of ``class_id``."""
        try:
            return self._names[class_id]
        except KeyError:
            raise ValueError(f"LVIS category id {class_id} is not in the annotations") from None

    def __repr__(self) -> str:
        return (
            f"LvisSource(fold={self.fold}, split={self.split!r}, classes={len(self.classes)}, "
            f"images={len(self.image_order())}, root={str(self.root)!r})"
        )
