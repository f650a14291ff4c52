"""Write synthetic datasets in the real on-disk formats of PASCAL VOC/SBD and COCO 2014.

The trees go through the same readers as the real data (``pascal.py``, ``coco.py``); the demo trains
on them. Scenes come from :mod:`vrpsam.data.synthetic_scenes`: every class has a fixed look (shape,
palette, texture), objects vary in scale and occlude each other over a cluttered background.

Defaults: VOC 600 images (420 train / 180 val), COCO 1200 images (780 train2014 / 420 val2014),
256×256; about 8 s and 18 s on 2 (shared) CPU cores. Class draws are balanced so that on these
defaults every class of every fold has at least 6 images in each split (train, val, test; see
data/README.md). VOC images draw their 2-4 classes from one PASCAL-5i fold group each, so that BAM's
filter (training images must not show a novel class) keeps 3/4 of the training images, not ~40%.
COCO images draw 2-5 classes from all 80, and 10% of them hold a crowd (``iscrowd=1``).

Same seed and arguments → byte-identical files (one random generator per image; sorted JSON keys).
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vrpsam.data.folds import COCO_CATEGORIES, PASCAL_CLASSES
from vrpsam.data.synthetic_scenes import balanced_classes, boundary_ring, render_scene
from vrpsam.fileio import atomic_write_bytes, atomic_write_json

GENERATOR_VERSION = 1
MARKER = "vrpsam_synthetic.json"
"""File at the top of every synthetic tree recording how it was made."""

_SUPERCATEGORIES = (
    (1, "person"), (9, "vehicle"), (15, "outdoor"), (25, "animal"), (33, "accessory"),
    (43, "sports"), (51, "kitchen"), (61, "food"), (70, "furniture"), (77, "electronic"),
    (82, "appliance"), (90, "indoor"),
)  # fmt: skip
"""(last COCO category id of the group, supercategory name)."""


def voc_palette() -> list[int]:
    """The 256-entry VOC colour map (flat R, G, B list) used by SegmentationClass(Aug) PNGs."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _prepare_out(out: str | Path, marker_format: str, overwrite: bool) -> Path:
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty; choose an empty folder or pass overwrite=True (--force) to write "
            f"a {marker_format} tree over it"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _plan(
    n: int, rng: np.random.Generator, n_classes: int, groups: int, ks, probs
) -> list[list[int]]:
    """Classes of each image, drawn in sequence (balanced) so that rendering can run in parallel."""
    counts = np.zeros(n_classes, np.int64)
    group_size = n_classes // groups
    plans = []
    for i in range(n):
        g = i % groups
        pool = np.arange(g * group_size, (g + 1) * group_size)
        plans.append(balanced_classes(rng, counts, pool, int(rng.choice(ks, p=probs))))
    return plans


def _run(worker, jobs: list[tuple], workers: int) -> list:
    if workers <= 1 or len(jobs) < 64:
        return [worker(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(worker, jobs, chunksize=16))


def _voc_image(job: tuple) -> None:
    out, image_id, classes, seed, code, index, size, palette = job
    rng = np.random.default_rng([seed, code, index, 1])
    scene = render_scene(rng, size=size, classes=classes)
    lut = np.array([0, *[c + 1 for c in scene.classes]], np.uint8)
    label = lut[scene.instances]
    label[boundary_ring(scene.instances)] = 255
    png = Image.fromarray(label, mode="P")
    png.putpalette(palette)
    atomic_write_bytes(
        out / "JPEGImages" / f"{image_id}.jpg",
        _encode(Image.fromarray(scene.image), "JPEG", quality=90),
    )
    atomic_write_bytes(out / "SegmentationClassAug" / f"{image_id}.png", _encode(png, "PNG"))


def write_voc_tree(
    out: str | Path,
    *,
    images: int = 600,
    seed: int = 0,
    size: int = 256,
    val_share: float = 0.3,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a VOC2012/SBD-style tree: JPEGImages, SegmentationClassAug, ImageSets/Segmentation.

    Masks are palette PNGs with VOC ids 0..20 and a 255 band around every object outline (like
    SBD/VOC boundaries). ``train.txt`` plays the SBD 'trainaug' list, ``val.txt`` VOC val (the test
    pool).

    Args:
        out: folder to write (created; must be empty unless ``overwrite``).
        images: total number of images; ``val_share`` of them go to ``val.txt``.
        seed: random seed; same seed and arguments → identical bytes.
        size: image side in pixels.
        val_share: share of images in ``val.txt``.
        workers: processes used to render (default: CPU count, at most 4).
        overwrite: write into a non-empty folder.

    Returns:
        The tree's root (pass it as ``data.root``).
    """
    out = _prepare_out(out, "voc", overwrite)
    n_val = max(1, round(images * val_share))
    splits = {"train": images - n_val, "val": n_val}
    palette = voc_palette()
    jobs, lists = [], {}
    for code, (split, n) in enumerate(splits.items()):
        plan = _plan(
            n,
            np.random.default_rng([seed, code, 0]),
            len(PASCAL_CLASSES),
            4,
            (2, 3, 4),
            (0.3, 0.45, 0.25),
        )
        ids = [f"synth_{split}_{i:06d}" for i in range(n)]
        lists[split] = ids
        jobs += [(out, ids[i], plan[i], seed, code, i, size, palette) for i in range(n)]
    _run(_voc_image, jobs, workers or min(4, os.cpu_count() or 1))
    for split, ids in lists.items():
        text = "".join(f"{i}\n" for i in ids).encode()
        atomic_write_bytes(out / "ImageSets" / "Segmentation" / f"{split}.txt", text)
    meta = {"format": "voc", "images": images, "seed": seed, "size": size, "val_share": val_share}
    atomic_write_json(out / MARKER, {**meta, "generator_version": GENERATOR_VERSION}, indent=1)
    return out


def rle_encode(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a binary mask (H, W): column-major runs, starting with zeros."""
    flat = mask.astype(np.uint8).flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs}


def _segmentation(mask: np.ndarray, crowd: bool) -> list | dict | None:
    """Polygons for an ordinary instance, RLE for a crowd or for a visible region with holes."""
    if crowd:
        return rle_encode(mask)
    contours, hierarchy = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    )
    if hierarchy is not None and (hierarchy[0][:, 3] >= 0).any():
        # Polygons cannot carry holes (pycocotools unions them): keep the exact region as RLE.
        return rle_encode(mask)
    polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    return polygons or None


def _coco_image(job: tuple) -> list[dict]:
    out, folder, file_name, image_id, classes, seed, code, index, size = job
    rng = np.random.default_rng([seed, code, index, 1])
    scene = render_scene(rng, size=size, classes=classes, crowd_prob=0.1)
    data = _encode(Image.fromarray(scene.image), "JPEG", quality=90)
    atomic_write_bytes(out / folder / file_name, data)
    annotations = []
    for k, (class_index, crowd) in enumerate(zip(scene.classes, scene.crowd, strict=True), start=1):
        mask = scene.instances == k
        area = int(mask.sum())
        segmentation = _segmentation(mask, crowd) if area >= 16 else None
        if segmentation is None:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        bbox = [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
        annotations.append(
            {
                "image_id": image_id,
                "category_id": COCO_CATEGORIES[class_index][0],
                "segmentation": segmentation,
                "area": float(area),
                "bbox": bbox,
                "iscrowd": int(crowd),
            }
        )
    return annotations


def _categories() -> list[dict]:
    def supercategory(cat_id: int) -> str:
        return next(name for last, name in _SUPERCATEGORIES if cat_id <= last)

    return [{"id": i, "name": n, "supercategory": supercategory(i)} for i, n in COCO_CATEGORIES]


def write_coco_tree(
    out: str | Path,
    *,
    images: int = 1200,
    seed: int = 0,
    size: int = 256,
    val_share: float = 0.35,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a COCO 2014-style tree: train2014, val2014, annotations/instances_{train,val}2014.json.

    Categories carry the real COCO ids and names; instances are polygons (RLE where occlusion
    leaves a hole), crowds are RLE with ``iscrowd=1``; ``area`` is the visible pixel count,
    ``bbox`` is ``[x, y, w, h]``. Arguments as :func:`write_voc_tree`.

    Returns:
        The tree's root (pass it as ``data.root``).
    """
    out = _prepare_out(out, "coco", overwrite)
    n_val = max(1, round(images * val_share))
    splits = {"train2014": images - n_val, "val2014": n_val}
    next_image_id = 1
    for code, (folder, n) in enumerate(splits.items()):
        plan = _plan(
            n,
            np.random.default_rng([seed, code, 0]),
            len(COCO_CATEGORIES),
            1,
            (2, 3, 4, 5),
            (0.25, 0.35, 0.25, 0.15),
        )
        ids = list(range(next_image_id, next_image_id + n))
        next_image_id += n
        names = [f"COCO_{folder}_{i:012d}.jpg" for i in ids]
        jobs = [(out, folder, names[i], ids[i], plan[i], seed, code, i, size) for i in range(n)]
        (out / folder).mkdir(parents=True, exist_ok=True)
        per_image = _run(_coco_image, jobs, workers or min(4, os.cpu_count() or 1))
        annotations = [a for image_annotations in per_image for a in image_annotations]
        for ann_id, annotation in enumerate(annotations, start=1 + code * 10_000_000):
            annotation["id"] = ann_id
        payload = {
            "info": {
                "description": "vrpsam synthetic COCO-style data",
                "version": str(GENERATOR_VERSION),
                "year": 2014,
            },
            "licenses": [{"id": 1, "name": "CC0", "url": ""}],
            "images": [
                {"id": i, "file_name": f, "width": size, "height": size, "license": 1}
                for i, f in zip(ids, names, strict=True)
            ],
            "annotations": annotations,
            "categories": _categories(),
        }
        atomic_write_json(out / "annotations" / f"instances_{folder}.json", payload)
    meta = {"format": "coco", "images": images, "seed": seed, "size": size, "val_share": val_share}
    atomic_write_json(out / MARKER, {**meta, "generator_version": GENERATOR_VERSION}, indent=1)
    return out
