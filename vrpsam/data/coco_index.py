"""A compact, cached index of a COCO instances json: which image holds which class, how much of it,
and the union mask of each (image, class) as compressed RLE.

Reading ``instances_train2014.json`` (~450 MB) in every process and data-loader worker is slow and
heavy; the index holds only what few-shot episodes need. It is built once with pycocotools and
cached as JSON next to the data (``ROOT/annotations/.vrpsam_index_<split>2014.json``), or, when
that folder is read-only, under ``$XDG_CACHE_HOME/vrpsam`` (``~/.cache/vrpsam``), or else kept in
memory only (a warning says which). The cache is rebuilt when the json's size, modification time
*and* SHA-256 no longer match (a touched file with unchanged content only refreshes the recorded
fingerprint).

Index layout::

    {"version": 1, "source": {"name", "size", "mtime_ns", "sha256"},
     "images": {"<file stem>": {"file_name", "height", "width", "classes": {"<class index>":
                                {"area", "area_crowd", "rle", "crowd_rle"}}}}}

``area`` counts the pixels of the union of the non-crowd instances, ``area_crowd`` those of the
union of the crowd regions alone; ``rle``/``crowd_rle`` are the matching compressed RLE strings (or
null).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vrpsam.artifacts.atomic import atomic_write_json
from vrpsam.data.folds import COCO_CATEGORIES
from vrpsam.data.reading import DatasetError, require

logger = logging.getLogger(__name__)

COCO_ROOT_HINT = (
    "set data.root to the COCO folder that holds train2014, val2014 and annotations; "
    "see data/README.md"
)
"""What a user should do when the COCO tree is missing or incomplete."""

INDEX_VERSION = 1


def import_pycocotools() -> tuple[Any, Any]:
    """``(pycocotools.coco.COCO, pycocotools.mask)``, imported on first use."""
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
    except ImportError as error:  # pragma: no cover - pycocotools is a declared dependency
        raise ImportError(
            "COCO data needs pycocotools: pip install 'pycocotools>=2.0.7'"
        ) from error
    return COCO, mask_utils


def rle_decode(counts: str, height: int, width: int) -> np.ndarray:
    """Decode a compressed COCO RLE string (pycocotools' text form) to a mask.

    Written here so that data-loader workers need no pycocotools (whose ``decode`` also warns under
    NumPy 2). Each run length is stored in 5-bit groups offset by 48, the 6th bit marking "more
    groups", sign-extended from the last group's 5th bit; from the third run on, the value is a
    difference to the run two places earlier.

    Returns:
        ``bool`` array of shape (height, width).
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            group = ord(counts[position]) - 48
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    values = np.arange(len(runs)) % 2 == 1  # runs alternate, starting with background
    flat = np.repeat(values, runs)
    if flat.size != height * width:
        raise DatasetError(f"RLE covers {flat.size} pixels, expected {height}x{width}")
    return flat.reshape(width, height).T  # COCO RLE runs down the columns


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_images(file_names: list[str], image_dir: Path) -> list[str]:
    """The ``file_names`` (paths relative to ``image_dir``, sorted) that have no file there; one
    directory listing per folder, not one ``stat`` per image."""
    listings: dict[Path, set[str]] = {}
    missing = []
    for name in file_names:
        folder = (image_dir / name).parent
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        if Path(name).name not in listings[folder]:
            missing.append(name)
    return sorted(missing)


def check_images_present(
    file_names: list[str],
    image_dir: Path,
    json_path: Path,
    hint: str = f"extract the matching COCO 2014 images and annotations. {COCO_ROOT_HINT}",
) -> None:
    """Raise ``DatasetError`` naming a few images ``json_path`` lists but ``image_dir`` lacks."""
    missing = missing_images(file_names, image_dir)
    if missing:
        raise DatasetError(
            f"{json_path} lists {len(missing)} images that are not in {image_dir} "
            f"(e.g. {', '.join(missing[:5])}): the annotation file does not match the image "
            f"folder; {hint}"
        )


def coco_classes() -> dict[int, int]:
    """COCO category id → COCO-20i class index (1..80)."""
    return {cat_id: index for index, (cat_id, _) in enumerate(COCO_CATEGORIES, start=1)}


def build_index(
    json_path: Path,
    image_dir: Path,
    *,
    class_of: Mapping[int, int] | None = None,
    file_name_of: Callable[[Mapping], str] | None = None,
    missing_hint: str | None = None,
) -> dict:
    """Read ``json_path`` with pycocotools and build the index (see the module docstring).

    Args:
        json_path: a COCO-format instances json.
        image_dir: the folder the images' file names are relative to.
        class_of: category id → class id (default: the 80 COCO 2014 categories → 1..80); a
            category outside it is refused.
        file_name_of: an image entry → its path under ``image_dir`` (default: ``file_name``).
        missing_hint: what to do when images are missing (default: COCO 2014's).

    Raises:
        DatasetError: the json names an unknown category, or images that ``image_dir`` lacks.
    """
    coco_cls, mask_utils = import_pycocotools()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco = coco_cls(str(json_path))
    class_of = coco_classes() if class_of is None else class_of
    file_name_of = file_name_of or (lambda img: img["file_name"])
    unknown = sorted(c for c in coco.cats if c not in class_of)
    if unknown:
        raise DatasetError(
            f"{json_path} has category ids {unknown[:8]} that are not COCO 2014 categories; "
            "vrpsam expects the 80 standard categories with their official ids"
        )
    file_names = {img_id: file_name_of(img) for img_id, img in coco.imgs.items()}
    hint = {"hint": missing_hint} if missing_hint else {}
    check_images_present(list(file_names.values()), image_dir, json_path, **hint)
    images = {}
    for img_id, img in coco.imgs.items():
        groups: dict[int, tuple[list, list]] = {}
        for ann in coco.imgToAnns.get(img_id, []):
            plain, crowd = groups.setdefault(class_of[ann["category_id"]], ([], []))
            (crowd if ann.get("iscrowd", 0) else plain).append(coco.annToRLE(ann))
        classes = {}
        for class_index, (plain, crowd) in sorted(groups.items()):
            entry = {"area": 0, "area_crowd": 0, "rle": None, "crowd_rle": None}
            for key, rles in (("", plain), ("crowd_", crowd)):
                if rles:
                    union = mask_utils.merge(rles, intersect=False) if len(rles) > 1 else rles[0]
                    entry[f"{key}rle"] = union["counts"].decode("ascii")
                    entry["area_crowd" if key else "area"] = int(mask_utils.area(union))
            classes[str(class_index)] = entry
        stem = Path(file_names[img_id]).stem
        images[stem] = {
            "file_name": file_names[img_id],
            "height": int(img["height"]),
            "width": int(img["width"]),
            "classes": classes,
        }
    names = {str(class_of[c["id"]]): c["name"] for c in coco.cats.values()}
    return {"version": INDEX_VERSION, "images": images, "categories": names}


def _cache_candidates(json_path: Path, cache_dir: Path | None) -> list[Path]:
    name = f".vrpsam_index_{json_path.stem.removeprefix('instances_')}.json"
    key = hashlib.sha1(str(json_path.resolve()).encode()).hexdigest()[:12]
    user = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vrpsam"
    return [json_path.parent / name, user / f"coco_index_{key}_{json_path.stem}.json"]


def _read_cache(path: Path, json_path: Path, stat: os.stat_result) -> dict | None:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("source"), dict):
        return None
    source = data["source"]
    if data.get("version") != INDEX_VERSION or source.get("size") != stat.st_size:
        return None
    if source.get("mtime_ns") == stat.st_mtime_ns:
        return data
    if source.get("sha256") == _sha256(json_path):
        data["source"]["mtime_ns"] = stat.st_mtime_ns
        _write_cache(path, data)
        return data
    return None


def _write_cache(path: Path, data: dict) -> bool:
    try:
        atomic_write_json(path, data)
    except OSError as error:
        logger.debug("cannot write COCO index %s: %s", path, error)
        return False
    return True


def load_index(
    json_path: str | Path,
    image_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    root_hint: str = COCO_ROOT_HINT,
    **build: Any,
) -> tuple[dict, str]:
    """The index of ``json_path``, from the cache when it is current, else built and cached.

    Args:
        json_path: ``instances_<split>2014.json``.
        image_dir: the folder of that split's images (checked against the json on every load).
        cache_dir: where to cache the index when the annotations folder is read-only
            (default ``$XDG_CACHE_HOME/vrpsam``).
        root_hint: what to tell the user when a file is missing.
        **build: :func:`build_index`'s ``class_of`` and ``file_name_of`` (other datasets).

    Returns:
        ``(index, status)`` with status ``"cached"`` or ``"built"``.
    """
    json_path, image_dir = Path(json_path).expanduser(), Path(image_dir).expanduser()
    require(json_path, "annotation file", root_hint)
    require(image_dir, "image folder", root_hint)
    stat = json_path.stat()
    candidates = _cache_candidates(json_path, Path(cache_dir) if cache_dir else None)
    for path in candidates:
        data = _read_cache(path, json_path, stat)
        if data is not None:
            files = [entry["file_name"] for entry in data["images"].values()]
            hint = {"hint": build["missing_hint"]} if build.get("missing_hint") else {}
            check_images_present(files, image_dir, json_path, **hint)
            return data, "cached"
    logger.info("indexing %s (once; cached afterwards)", json_path)
    data = build_index(json_path, image_dir, **build)
    data["source"] = {
        "name": json_path.name,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": _sha256(json_path),
    }
    for path in candidates:
        if _write_cache(path, data):
            if path != candidates[0]:
                logger.warning("%s is read-only: COCO index cached at %s", json_path.parent, path)
            return data, "built"
    logger.warning("cannot cache the COCO index of %s anywhere: it is kept in memory", json_path)
    return data, "built"
