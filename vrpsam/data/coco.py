"""COCO-20i reader over COCO 2014 (implements :class:`~vrpsam.data.base.FewShotSource`).

Expected layout under ``root``::

    train2014/COCO_train2014_<12 digits>.jpg
    val2014/COCO_val2014_<12 digits>.jpg
    annotations/instances_train2014.json
    annotations/instances_val2014.json

Splits of fold ``f``: ``train`` = train2014 images holding a base class, minus a seeded held-out
~10% that forms ``val`` (model selection); ``test`` = val2014 images holding a novel class (the pool
of the fixed test episodes). Image ids are file stems (``COCO_val2014_000000000042``).

Decisions (all configurable):

* target mask = union of all instances of the class; crowd regions (``iscrowd=1``) count as
  foreground by default, as in the HSNet COCO-20i masks (``crowd="ignore"`` marks them 255,
  ``crowd="background"`` drops them);
* a class enters an image's lists when its mask covers ≥ ``min_area`` = 2*32*32 pixels, PFENet's
  rule (HSNet keeps any size; ``min_area=1`` reproduces that);
* ``exclude_novel=True`` leaves out training images that hold any novel-class object (BAM's
  ``filter_intersection``, whose lists the official VRP-SAM code reads); runs set it from
  ``protocol.train_exclude_novel`` (true by default), the reader's own default is False.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vrpsam.data.base import IGNORE_INDEX, SPLITS
from vrpsam.data.coco_index import COCO_ROOT_HINT, load_index, rle_decode
from vrpsam.data.folds import all_classes, check_fold, class_name, novel_classes, split_train_val
from vrpsam.data.reading import read_rgb, require

CROWD_MODES = ("foreground", "ignore", "background")


class CocoSource:
    """One split of one COCO-20i fold.

    Args:
        root: the COCO folder (``train2014``, ``val2014``, ``annotations``).
        fold: 0..3.
        split: ``"train"``, ``"val"`` or ``"test"``.
        novel: the fold's test classes (class indices 1..80); default COCO-20i ``{f+1, f+5, ...}``.
            COCO→PASCAL passes the COCO classes it withholds here.
        min_area: pixels the class mask needs for the image to enter the class's list.
        crowd: how crowd regions enter the mask: ``"foreground"``, ``"ignore"`` or ``"background"``.
        exclude_novel: drop training images that hold any novel class (BAM's filter).
        val_fraction, val_seed, val_min_per_class: the held-out validation rule
            (:func:`~vrpsam.data.folds.holdout_images`).
        cache_dir: index cache folder used when ``root/annotations`` is read-only.
        name: dataset name reported by the source.
        index: a preloaded index (``load_index(...)[0]``) so several sources share one.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        fold: int,
        split: str,
        novel: Sequence[int] | None = None,
        min_area: int = 2 * 32 * 32,
        crowd: str = "foreground",
        exclude_novel: bool = False,
        val_fraction: float = 0.1,
        val_seed: int = 0,
        val_min_per_class: int = 2,
        cache_dir: str | Path | None = None,
        name: str = "coco",
        index: Mapping | None = None,
    ) -> None:
        self.fold = check_fold(fold)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if crowd not in CROWD_MODES:
            raise ValueError(f"crowd must be one of {', '.join(CROWD_MODES)}, got {crowd!r}")
        self.name, self.split, self.crowd = name, split, crowd
        self.root = Path(root).expanduser()
        require(self.root, "COCO root", COCO_ROOT_HINT)
        self.novel = tuple(sorted(novel)) if novel is not None else novel_classes("coco", fold)
        base = tuple(c for c in all_classes("coco") if c not in self.novel)
        self.classes: tuple[int, ...] = self.novel if split == "test" else base
        self.folder = "val2014" if split == "test" else "train2014"
        json_path = self.root / "annotations" / f"instances_{self.folder}.json"
        if index is None:
            index, self.index_status = load_index(
                json_path, self.root / self.folder, cache_dir=cache_dir
            )
        else:
            self.index_status = "given"
        self._images = index["images"]
        by_class: dict[int, list[str]] = {c: [] for c in self.classes}
        novel_keys = {str(c) for c in self.novel}
        for stem, entry in sorted(self._images.items()):
            present = entry["classes"]
            if split != "test" and exclude_novel and novel_keys & present.keys():
                continue
            for c in self.classes:
                if self._area(present.get(str(c))) >= min_area:
                    by_class[c].append(stem)
        if split != "test":
            by_class = split_train_val(
                by_class,
                split,
                fraction=val_fraction,
                seed=val_seed,
                min_per_class=val_min_per_class,
            )
        self._by_class = {c: sorted(by_class.get(c, ())) for c in self.classes}

    def _area(self, entry: Mapping | None) -> int:
        if entry is None:
            return 0
        # Crowd and plain regions may overlap, so the sum can overcount a little; only the
        # threshold decision uses it and overlaps of crowd with plain instances are rare.
        return entry["area"] + (entry["area_crowd"] if self.crowd == "foreground" else 0)

    def image_ids_by_class(self) -> Mapping[int, Sequence[str]]:
        """Images in which each class of :attr:`classes` is large enough (sorted lists)."""
        return self._by_class

    def image_ids(self) -> list[str]:
        """All images of this split, sorted."""
        return sorted(set().union(*self._by_class.values()))

    def image_order(self) -> list[str]:
        """The split's images by file name (COCO lists have no order of their own)."""
        return self.image_ids()

    def classes_present(self, image_id: str) -> tuple[int, ...]:
        """The split's classes with at least one pixel in the image (crowds per :attr:`crowd`)."""
        present = self._entry(image_id)["classes"]
        crowd = self.crowd != "background"
        return tuple(
            c
            for c in self.classes
            if (entry := present.get(str(c)))
            and (entry["area"] > 0 or (crowd and entry["area_crowd"] > 0))
        )

    def _entry(self, image_id: str) -> Mapping:
        try:
            return self._images[image_id]
        except KeyError:
            raise KeyError(
                f"{image_id!r} is not in instances_{self.folder}.json under {self.root}"
            ) from None

    def image_path(self, image_id: str) -> Path:
        """Path of the JPEG of ``image_id``."""
        return self.root / self.folder / self._entry(image_id)["file_name"]

    def load_image(self, image_id: str) -> np.ndarray:
        """RGB ``uint8`` (H, W, 3)."""
        return read_rgb(self.image_path(image_id))

    def load_mask(self, image_id: str, class_id: int) -> np.ndarray:
        """``uint8`` (H, W): 1 on the union of the class's instances, 0 elsewhere; crowd regions per
        :attr:`crowd` (1, 255 or 0). An image without the class gives an all-zero mask."""
        if not 1 <= class_id <= len(all_classes("coco")):
            raise ValueError(f"COCO class index must be 1..80, got {class_id}")
        entry = self._entry(image_id)
        height, width = entry["height"], entry["width"]
        mask = np.zeros((height, width), np.uint8)
        regions = entry["classes"].get(str(class_id))
        if regions is None:
            return mask
        if regions["crowd_rle"] is not None and self.crowd != "background":
            crowd = rle_decode(regions["crowd_rle"], height, width)
            mask[crowd] = 1 if self.crowd == "foreground" else IGNORE_INDEX
        if regions["rle"] is not None:
            mask[rle_decode(regions["rle"], height, width)] = 1
        return mask

    def class_name(self, class_id: int) -> str:
        """COCO name of ``class_id``."""
        return class_name("coco", class_id)

    def __repr__(self) -> str:
        return (
            f"CocoSource(name={self.name!r}, fold={self.fold}, split={self.split!r}, "
            f"classes={len(self.classes)}, images={len(self.image_ids())}, root={str(self.root)!r})"
        )
