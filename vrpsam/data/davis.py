"""Reading a DAVIS tree (2017 multi-object, 2016 single-object) for one-shot video segmentation.

Layout under the DAVIS folder (the official trainval download)::

    JPEGImages/480p/<sequence>/00000.jpg ...
    Annotations/480p/<sequence>/00000.png ...   palette PNGs: 0 background, k = object k
    ImageSets/2017/val.txt                      one sequence name per line
    ImageSets/2016/val.txt

Label conventions: DAVIS-2017 ids are read as the davis2017-evaluation code reads them, 255 (void)
as background; DAVIS-2016 is single-object, every non-zero value is the one object (id 1), 255
included, since the DAVIS-2016 release stores its masks as 0/255. The
objects of a sequence are the ids of its first annotated frame (DAVIS annotates every object on
the first frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vrpsam.data.reading import DatasetError, read_id_list, read_label_png, read_rgb, require

YEARS = ("2016", "2017")
VOID = 255
HINT = "download DAVIS-2017 trainval (480p) from davischallenge.org and set data.root to its folder"


class DavisSource:
    """One split of a DAVIS tree.

    Args:
        root: the DAVIS folder (holding ``JPEGImages``, ``Annotations``, ``ImageSets``).
        year: ``"2017"`` (multi-object) or ``"2016"`` (single-object).
        split: the ImageSets list (``val``, ``train``).
        resolution: ``480p`` or ``Full-Resolution``.

    Raises:
        FileNotFoundError: the folder, its image or annotation folder, or the list is missing
            (the message names it and the fix).
        ValueError: an unknown year.
    """

    def __init__(
        self, root: str | Path, *, year: str = "2017", split: str = "val", resolution: str = "480p"
    ) -> None:
        year = str(year)
        if year not in YEARS:
            raise ValueError(f"DAVIS year must be one of {', '.join(YEARS)}, got {year!r}")
        self.root = require(Path(root).expanduser(), "DAVIS folder", HINT)
        self.year, self.split, self.resolution = year, split, resolution
        self.image_dir = require(self.root / "JPEGImages" / resolution, "DAVIS frames", HINT)
        self.label_dir = require(self.root / "Annotations" / resolution, "DAVIS annotations", HINT)
        self.list_file = self.root / "ImageSets" / year / f"{split}.txt"
        self.sequences: tuple[str, ...] = tuple(read_id_list(self.list_file, HINT))
        if not self.sequences:
            raise DatasetError(f"{self.list_file} lists no sequence: {HINT}")
        self._frames: dict[str, tuple[str, ...]] = {}
        self._objects: dict[str, tuple[int, ...]] = {}

    @property
    def name(self) -> str:
        return f"davis{self.year}"

    def frames(self, sequence: str) -> tuple[str, ...]:
        """The sorted frame stems (``00000``, ``00001``, ...) of a sequence's JPEG folder."""
        if sequence not in self._frames:
            folder = require(
                self.image_dir / sequence, f"frames of sequence {sequence!r}", "re-extract it"
            )
            stems = tuple(sorted(p.stem for p in folder.glob("*.jpg")))
            if not stems:
                raise DatasetError(f"no .jpg frame in {folder}: re-extract the sequence")
            self._frames[sequence] = stems
        return self._frames[sequence]

    def frame_path(self, sequence: str, stem: str) -> Path:
        return self.image_dir / sequence / f"{stem}.jpg"

    def label_path(self, sequence: str, stem: str) -> Path:
        return self.label_dir / sequence / f"{stem}.png"

    def load_frame(self, sequence: str, stem: str) -> np.ndarray:
        """(H, W, 3) ``uint8`` RGB of one frame."""
        return read_rgb(self.frame_path(sequence, stem), what="DAVIS frame")

    def load_label(self, sequence: str, stem: str) -> np.ndarray:
        """(H, W) ``uint8`` object ids of one frame, as stored (palette indices, 255 = void).

        Raises:
            FileNotFoundError: the annotation PNG is missing (named).
            DatasetError: it cannot be decoded or is a colour (RGB) rendering.
        """
        path = self.label_path(sequence, stem)
        if not path.is_file():
            raise FileNotFoundError(
                f"DAVIS annotation not found: {path}: every frame needs its palette PNG; {HINT}"
            )
        return read_label_png(path)

    def load_objects(self, sequence: str, stem: str) -> np.ndarray:
        """(H, W) ``uint8`` ids as scored: DAVIS-2016 binarised (non-zero → 1), DAVIS-2017 with
        void (255) read as background."""
        label = self.load_label(sequence, stem)
        if self.year == "2016":
            return (label > 0).astype(np.uint8)
        return np.where(label == VOID, 0, label).astype(np.uint8)

    def objects(self, sequence: str) -> tuple[int, ...]:
        """The sorted object ids of the sequence's first frame (2016: ``(1,)``).

        Raises:
            DatasetError: the first frame's annotation holds no object.
        """
        if sequence not in self._objects:
            first = self.frames(sequence)[0]
            ids = tuple(int(i) for i in np.unique(self.load_objects(sequence, first)) if i)
            if not ids:
                raise DatasetError(
                    f"{self.label_path(sequence, first)} marks no object: the first frame of a "
                    "sequence must annotate every object to segment"
                )
            self._objects[sequence] = ids
        return self._objects[sequence]
