"""FSS-1000 reader (implements :class:`~vrpsam.data.base.FewShotSource`).

Expected layout under ``root`` (the folder that holds the 1000 class folders, as released)::

    <class name>/1.jpg .. 10.jpg     the images (class names may hold apostrophes and underscores)
    <class name>/1.png .. 10.png     their masks: converted to grey and thresholded at 128

Splits follow hsnet's class lists (shipped with the package, :func:`fss_class_splits`): ``train``
= its 520 ``trn`` classes, ``val`` = its 240 ``val`` classes (model selection on *other* classes,
as hsnet selects, not a hold-out of training images), ``test`` = its 240 ``test`` classes. There is
one fold (0). Class ids number the classes 1..1000: ``trn`` in sorted order, then ``val``, then
``test`` (hsnet's ids plus one).

Test episodes take every test image once as the target (the ``pairs`` rule over
:meth:`FssSource.image_order`, ``n = null``: 2400 one-shot episodes), references drawn from the
other nine images of its class; a capped list is a class-balanced prefix.

A synthetic tree (``vrpsam-data synthetic --format fss1000``) holds a subset of the classes and
says which in its marker file; a real tree missing a class folder is refused, naming the folders.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vrpsam.data.base import SPLITS
from vrpsam.data.folds import check_fold
from vrpsam.data.fss_splits import fss_class_splits
from vrpsam.data.reading import DatasetError, read_grey_mask, read_rgb, require

ROOT_HINT = (
    "set data.root to the FSS-1000 folder that holds the class folders (<class>/1.jpg, "
    "<class>/1.png, ...); see data/README.md"
)
"""What a user should do when the FSS-1000 tree is missing or incomplete."""

SPLIT_LISTS = {"train": "trn", "val": "val", "test": "test"}
"""Our split names → hsnet's list names."""

MASK_THRESHOLD = 128
"""Grey level from which a mask pixel is foreground (hsnet's ``read_mask``)."""

SYNTHETIC_MARKER = "vrpsam_synthetic.json"


@functools.cache
def class_numbering() -> dict[str, int]:
    """Class name → id 1..1000: hsnet's ``trn``, ``val``, ``test`` lists, each sorted."""
    splits = fss_class_splits()
    names = [name for key in ("trn", "val", "test") for name in sorted(splits[key])]
    return {name: index for index, name in enumerate(names, start=1)}


def synthetic_classes(root: Path) -> set[str] | None:
    """The classes a synthetic tree's marker says it holds, or None for a real tree."""
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file():
        return None
    record = json.loads(marker.read_text(encoding="utf-8"))
    if record.get("format") != "fss1000":
        raise DatasetError(
            f"{root} is a synthetic {record.get('format')!r} tree, not FSS-1000; {ROOT_HINT}"
        )
    return {name for names in record.get("classes", {}).values() for name in names}


class FssSource:
    """One split of FSS-1000 with hsnet's class lists.

    Args:
        root: the FSS-1000 folder.
        fold: 0 (the only fold).
        split: ``"train"``, ``"val"`` or ``"test"``.
        exclude_novel, val_fraction, val_seed, val_min_per_class: accepted for the run's protocol
            switches and ignored: FSS-1000's splits hold disjoint classes and its ``val`` split is
            a class list of its own, not a hold-out.
        name: dataset name reported by the source.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DatasetError: class folders of the split are missing (all named, up to 8, with a count).
    """

    def __init__(
        self,
        *,
        root: str | Path,
        fold: int = 0,
        split: str,
        exclude_novel: bool = False,
        val_fraction: float = 0.1,
        val_seed: int = 0,
        val_min_per_class: int = 2,
        name: str = "fss1000",
    ) -> None:
        del exclude_novel, val_fraction, val_seed, val_min_per_class
        self.fold = check_fold(fold, "fss1000")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.name, self.split = name, split
        self.root = Path(root).expanduser()
        require(self.root, "FSS-1000 root", ROOT_HINT)
        numbering = class_numbering()
        names = sorted(fss_class_splits()[SPLIT_LISTS[split]])
        written = synthetic_classes(self.root)
        if written is not None:
            names = [n for n in names if n in written]
        missing = [n for n in names if not (self.root / n).is_dir()]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:8])
            raise DatasetError(
                f"FSS-1000 at {self.root} lacks {len(missing)} class folder(s) of the {split} "
                f"split: {shown}{' ...' if len(missing) > 8 else ''}; {ROOT_HINT}"
            )
        self._names = {numbering[n]: n for n in names}
        self.classes: tuple[int, ...] = tuple(sorted(self._names))
        self._by_class = {c: self._images_of(self._names[c]) for c in self.classes}
        self._class_of = {i: c for c, ids in self._by_class.items() for i in ids}

    def _images_of(self, name: str) -> list[str]:
        # hsnet lists a class's images as sorted paths: "1", "10", "2", ... (string order).
        stems = sorted(p.stem for p in (self.root / name).glob("*.jpg"))
        return [f"{name}/{stem}" for stem in stems]

    def image_ids_by_class(self) -> Mapping[int, Sequence[str]]:
        """The images of each class (every image of its folder; ids ``<class>/<stem>``)."""
        return self._by_class

    def image_order(self) -> list[str]:
        """The test episodes' order: the first image of every class (in id order), then the
        second of every class, ... A full pass takes every image once, as hsnet's class-major
        order does (the metrics do not depend on the order); a shorter list (``eval.episodes=N``)
        is then a class-balanced prefix instead of the first few classes."""
        order = []
        for position in range(max(map(len, self._by_class.values()), default=0)):
            order += [ids[position] for ids in self._by_class.values() if position < len(ids)]
        return order

    def classes_present(self, image_id: str) -> tuple[int, ...]:
        """The class of the image's folder (FSS images show one class)."""
        return (self._class(image_id),)

    def _class(self, image_id: str) -> int:
        try:
            return self._class_of[image_id]
        except KeyError:
            raise KeyError(f"{image_id!r} is not an image of FSS-1000 {self.split}") from None

    def image_path(self, image_id: str) -> Path:
        """Path of the JPEG of ``image_id``."""
        return self.root / f"{image_id}.jpg"

    def load_image(self, image_id: str) -> np.ndarray:
        """RGB ``uint8`` (H, W, 3)."""
        return read_rgb(self.image_path(image_id))

    def load_mask(self, image_id: str, class_id: int) -> np.ndarray:
        """``uint8`` (H, W): 1 where the grey mask is ≥ 128, for the image's own class; all zero
        for another class (FSS images show one class)."""
        mask = read_grey_mask(
            self.root / f"{image_id}.png",
            threshold=MASK_THRESHOLD,
            missing_hint=f"every FSS-1000 image needs its mask beside it; {ROOT_HINT}",
            corrupt_hint="re-extract FSS-1000",
        )
        if class_id != self._class(image_id):
            mask[:] = False
        return mask.astype(np.uint8)

    def class_name(self, class_id: int) -> str:
        """The class folder's name."""
        if class_id in self._names:
            return self._names[class_id]
        for name, index in class_numbering().items():
            if index == class_id:
                return name
        raise ValueError(f"FSS-1000 class id must be 1..1000, got {class_id}")

    def __repr__(self) -> str:
        return (
            f"FssSource(split={self.split!r}, classes={len(self.classes)}, "
            f"images={len(self._class_of)}, root={str(self.root)!r})"
        )
