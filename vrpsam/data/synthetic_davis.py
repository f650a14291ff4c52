"""Write synthetic video sequences in the on-disk format of DAVIS (the reader: ``davis.py``).

Every sequence shows 1 to 3 objects over a cluttered background; the objects look like the
synthetic classes the demo trains on (:func:`vrpsam.data.synthetic_scenes.class_style`: shape,
palette and texture by class) and glide smoothly (a constant velocity plus a slow wobble), later
objects occluding earlier ones. In the first sequence the last object drifts out of the picture
halfway through, so the trees test objects that leave the frame.

``year="2017"`` writes palette PNG annotations with the DAVIS (VOC) palette, one id per object;
``year="2016"`` writes one object per sequence, stored as DAVIS-2016 does (greyscale 0/255). Both
``ImageSets/2017/val.txt`` and ``ImageSets/2016/val.txt`` list every sequence. Same seed and
arguments → byte-identical files.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from vrpsam.artifacts.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from vrpsam.data.synthetic import MARKER, _prepare_out, voc_palette
from vrpsam.data.synthetic_scenes import _background, _paint_object, class_style

DAVIS_GENERATOR_VERSION = 1
NUM_CLASSES = 20
"""Objects take the looks of the first 20 synthetic classes (those of the demo's VOC tree)."""


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _tracks(
    rng: np.random.Generator, count: int, frames: int, size: tuple[int, int], leaves: bool
) -> list[dict]:
    """Per object: class, radius and a (frames, 2) path of (x, y) centres in pixels."""
    h, w = size
    side = min(h, w)
    classes = rng.choice(NUM_CLASSES, size=count, replace=False)
    tracks = []
    for k, class_index in enumerate(classes):
        radius = rng.uniform(0.16, 0.24) * side
        start = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
        velocity = rng.uniform(-0.03, 0.03, 2) * side
        if leaves and k == count - 1:
            # Out through the nearer side edge by about the middle of the sequence.
            direction = -1.0 if start[0] < w / 2 else 1.0
            distance = (start[0] if direction < 0 else w - start[0]) + 2 * radius
            velocity = np.array([direction * distance / max(frames / 2, 1), 0.0])
        phase = rng.uniform(0, 2 * math.pi)
        t = np.arange(frames)[:, None]
        wobble = 0.04 * side * np.stack([np.sin(0.7 * t[:, 0] + phase),
                                         np.cos(0.5 * t[:, 0] + phase)], 1)  # fmt: skip
        tracks.append(
            {"class": int(class_index), "radius": radius, "path": start + velocity * t + wobble}
        )
    return tracks


def _render_frame(
    seed: int, index: int, tracks: list[dict], t: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) RGB and (H, W) ``uint8`` ids of frame ``t`` of sequence ``index``."""
    h, w = size
    side = max(h, w)
    # The same generators every frame: the background and each object keep their look.
    image = _background(np.random.default_rng([seed, index, 0]), side)
    labels = np.zeros((side, side), np.uint8)
    for k, track in enumerate(tracks, start=1):
        rng = np.random.default_rng([seed, index, k])
        footprint = _paint_object(
            rng, image, class_style(track["class"]), track["path"][t], track["radius"]
        )
        labels[footprint] = k
    rgb = np.clip(image[:h, :w], 0, 255).astype(np.uint8)
    return rgb, labels[:h, :w].copy()


def write_davis_tree(
    out: str | Path,
    *,
    seed: int = 0,
    sequences: int = 4,
    frames: int = 8,
    size: tuple[int, int] = (96, 160),
    year: str = "2017",
    overwrite: bool = False,
) -> Path:
    """Write a synthetic DAVIS tree (see the module doc) and return its folder.

    Args:
        out: an empty (or new) folder.
        seed: decides everything drawn.
        sequences: number of sequences (``seq000``, ``seq001``, ...).
        frames: frames per sequence.
        size: (H, W) of every frame.
        year: ``"2017"`` (1-3 objects, palette ids) or ``"2016"`` (one object, 0/255).
        overwrite: write over a non-empty folder.

    Raises:
        FileExistsError: ``out`` is not empty and ``overwrite`` is False.
        ValueError: an unknown year or too few sequences/frames.
    """
    year = str(year)
    if year not in ("2016", "2017"):
        raise ValueError(f"year must be 2016 or 2017, got {year!r}")
    if sequences < 1 or frames < 2:
        raise ValueError(f"need at least 1 sequence of 2 frames, got {sequences} × {frames}")
    root = _prepare_out(out, "davis", overwrite)
    palette = voc_palette()
    names = [f"seq{i:03d}" for i in range(sequences)]
    for index, name in enumerate(names):
        rng = np.random.default_rng([seed, index, 99])
        count = 1 if year == "2016" else int(rng.integers(1, 4))
        if index == 0 and year == "2017":
            count = max(count, 2)  # the object that leaves is not the sequence's only one
        tracks = _tracks(rng, count, frames, size, leaves=index == 0)
        for t in range(frames):
            rgb, labels = _render_frame(seed, index, tracks, t, size)
            stem = f"{t:05d}"
            atomic_write_bytes(root / "JPEGImages" / "480p" / name / f"{stem}.jpg", _jpeg(rgb))
            if year == "2016":
                label = Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8), mode="L")
            else:
                label = Image.fromarray(labels, mode="P")
                label.putpalette(palette)
            atomic_write_bytes(root / "Annotations" / "480p" / name / f"{stem}.png", _png(label))
    listing = "".join(f"{name}\n" for name in names)
    for listed in ("2016", "2017"):
        atomic_write_text(root / "ImageSets" / listed / "val.txt", listing)
    meta = {
        "format": "davis",
        "year": year,
        "seed": seed,
        "sequences": sequences,
        "frames": frames,
        "size": list(size),
        "generator_version": DAVIS_GENERATOR_VERSION,
    }
    atomic_write_json(root / MARKER, meta, indent=1)
    return root
