"""Reading dataset files with errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ROOT_HINT = (
    "set data.root to the VOC2012 folder that holds JPEGImages and SegmentationClassAug; "
    "see data/README.md"
)
COCO_ROOT_HINT = (
    "set data.root to the COCO folder that holds train2014, val2014 and annotations; "
    "see data/README.md"
)


class DatasetError(RuntimeError):
    """A dataset tree is missing files or holds files the loaders cannot use."""


def require(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it exists, else raise ``FileNotFoundError`` naming it and the fix."""
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}: {hint}")
    return path


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to RGB.

    Returns:
        ``uint8`` array of shape (H, W, 3).

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file cannot be decoded (truncated, corrupt, not an image).
    """
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}: the tree is incomplete; re-extract it")
    try:
        with Image.open(path) as image:
            # load() forces a full decode so that truncated files fail here, not in a worker later.
            image.load()
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(
            f"cannot read image {path}: {error}; the file is corrupt or truncated, re-extract it "
            "from the dataset archive"
        ) from error


def read_label_png(path: Path) -> np.ndarray:
    """Decode a VOC-style label PNG (palette or grey) to its class ids.

    Returns:
        ``uint8`` array of shape (H, W) holding the palette indices / grey values.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file cannot be decoded or is a colour (RGB) rendering of the labels.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"mask not found: {path}: every listed image needs a SegmentationClassAug PNG; "
            "see data/README.md"
        )
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("P", "L"):
                raise DatasetError(
                    f"mask {path} has mode {image.mode}; expected a palette or greyscale PNG whose "
                    "values are class ids (the SegmentationClassAug format), not a colour rendering"
                )
            return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot read mask {path}: {error}; re-extract it") from error


def read_id_list(path: Path, hint: str) -> list[str]:
    """Image ids of a VOC ``ImageSets`` list file (one id per line, blank lines skipped)."""
    require(path, "image list", hint)
    with path.open(encoding="utf-8") as handle:
        return [line.split()[0] for line in handle if line.strip()]
