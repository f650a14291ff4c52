"""Write a synthetic tree in FSS-1000's released layout: ``<class>/1.jpg .. 10.jpg`` and masks
``<class>/1.png .. 10.png``.

Class names are hsnet's (:func:`vrpsam.data.fss_splits.fss_class_splits`); a tree holds a seeded
subset of each split, recorded in its marker file (:data:`~vrpsam.data.synthetic.MARKER`) so that
the reader can accept a tree of fewer than 1000 classes. Each image shows ONE object of its class,
object-centred like FSS, covering 15-60% of the image, over a cluttered background; the classes
differ in look (:func:`~vrpsam.data.synthetic_scenes.class_style` of their position in the tree).

Masks are as the real data has them: 8-bit PNGs with anti-aliased outlines (rendered at 4× and
area-downsampled, so grey values lie between 0 and 255 and the reader's threshold at 128 decides the
edge), mostly greyscale (``L``), a seeded few saved as RGB with three equal channels. Same seed and
arguments → byte-identical files.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vrpsam.artifacts.atomic import atomic_write_bytes, atomic_write_json
from vrpsam.data.fss_splits import FSS_SPLITS, fss_class_splits
from vrpsam.data.synthetic import MARKER, _prepare_out
from vrpsam.data.synthetic_scenes import (
    ClassStyle,
    _background,
    _paint_distractor,
    _paint_object,
    class_style,
)

GENERATOR_VERSION = 1
IMAGES_PER_CLASS = 10
"""FSS-1000 has 10 annotated images per class."""
COVERAGE = (0.15, 0.6)
"""Share of the image the object covers (mask ≥ 128): large enough for 1-shot episodes."""
RGB_MASK_SHARE = 0.05
"""Share of the masks saved as RGB PNGs (at least one per tree), to exercise the reader."""
_SUPERSAMPLE = 4
_TRIES = 16
_SPECIAL = ("'", "_")
"""Characters of folder names a tree must hold when its split lists hold them."""


def _pick(rng: np.random.Generator, names: tuple[str, ...], n: int) -> list[str]:
    """``n`` names of ``names`` drawn by ``rng``, holding an apostrophe and an underscore where the
    split has such names (and ``n`` has room), in the split's order."""
    order = [int(i) for i in rng.permutation(len(names))]
    n = min(n, len(names))
    chosen: list[int] = []
    for char in _SPECIAL:
        if len(chosen) < n and not any(char in names[i] for i in chosen):
            chosen += [i for i in order if char in names[i]][:1]
    chosen += [i for i in order if i not in chosen][: n - len(chosen)]
    return [names[i] for i in sorted(chosen)]


def fss_tree_classes(seed: int, classes: tuple[int, int, int]) -> dict[str, list[str]]:
    """The class names a tree of ``seed`` holds: ``classes[i]`` names of split ``FSS_SPLITS[i]``."""
    splits = fss_class_splits()
    return {
        split: _pick(np.random.default_rng([seed, 7, code]), splits[split], int(n))
        for code, (split, n) in enumerate(zip(FSS_SPLITS, classes, strict=True))
    }


def render_object(rng: np.random.Generator, style: ClassStyle, size: int) -> tuple:
    """One object-centred image and its anti-aliased mask.

    Args:
        rng: the image's random generator.
        style: the class's look.
        size: side S of the square image.

    Returns:
        ``(image, mask)``: RGB ``uint8`` (S, S, 3) and ``uint8`` (S, S) with 0, 255 and grey edges.
    """
    big = size * _SUPERSAMPLE
    image = cv2.resize(_background(rng, size), (big, big), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(2, 5))):
        _paint_distractor(rng, image, big)
    radius = size * math.sqrt(rng.uniform(0.2, 0.5) / math.pi)  # shapes have the disc's area
    margin = min(0.8 * radius, size / 2)
    center = rng.uniform(margin, size - margin, 2)
    footprint = _paint_object(rng, image, style, center * _SUPERSAMPLE, radius * _SUPERSAMPLE)
    image = cv2.resize(np.clip(image, 0, 255), (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(footprint.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return np.round(image).astype(np.uint8), np.round(mask * 255).astype(np.uint8)


def _encode(array: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _rgb_masks(seed: int, names: list[str]) -> set[str]:
    """Relative paths of the masks saved as RGB: a seeded draw of :data:`RGB_MASK_SHARE`."""
    paths = [f"{name}/{k}.png" for name in names for k in range(1, IMAGES_PER_CLASS + 1)]
    if not paths:
        return set()
    n = max(1, round(RGB_MASK_SHARE * len(paths)))
    picked = np.random.default_rng([seed, 13]).choice(len(paths), n, replace=False)
    return {paths[int(i)] for i in picked}


def write_fss_tree(
    out: str | Path,
    *,
    seed: int = 0,
    classes: tuple[int, int, int] = (12, 6, 6),
    size: int = 96,
    overwrite: bool = False,
) -> Path:
    """Write an FSS-1000-style tree of ``classes`` (trn, val, test) hsnet classes, 10 images each.

    Args:
        out: folder that will hold the class folders (``data.root``); created, must be empty
            unless ``overwrite``.
        seed: random seed; same seed and arguments → identical bytes.
        classes: number of classes drawn from hsnet's ``trn``, ``val`` and ``test`` lists.
        size: image side in pixels (the real images are 224×224).
        overwrite: write into a non-empty folder.

    Returns:
        The tree's root.
    """
    out = _prepare_out(out, "fss1000", overwrite)
    chosen = fss_tree_classes(seed, classes)
    everything = fss_class_splits()
    position = {name: i for i, name in enumerate(n for s in FSS_SPLITS for n in everything[s])}
    written = [name for split in FSS_SPLITS for name in chosen[split]]
    rgb = _rgb_masks(seed, written)
    for style_index, name in enumerate(written):
        style = class_style(style_index)
        for k in range(1, IMAGES_PER_CLASS + 1):
            for attempt in range(_TRIES):
                rng = np.random.default_rng([seed, position[name], k, attempt])
                image, mask = render_object(rng, style, size)
                if COVERAGE[0] <= np.mean(mask >= 128) <= COVERAGE[1]:
                    break
            if f"{name}/{k}.png" in rgb:
                mask = np.repeat(mask[:, :, None], 3, axis=2)
            atomic_write_bytes(out / name / f"{k}.jpg", _encode(image, "JPEG", quality=90))
            atomic_write_bytes(out / name / f"{k}.png", _encode(mask, "PNG"))
    meta = {
        "format": "fss1000",
        "classes": chosen,
        "seed": seed,
        "size": size,
        "images_per_class": IMAGES_PER_CLASS,
        "rgb_masks": sorted(rgb),
        "generator_version": GENERATOR_VERSION,
    }
    atomic_write_json(out / MARKER, meta, indent=1)
    return out
