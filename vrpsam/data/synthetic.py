"""Write synthetic datasets in the real on-disk formats of PASCAL VOC/SBD and COCO 2014.

The trees go through the same readers as the real data (``pascal.py``, ``coco.py``); the demo trains
on them. Scenes come from :mod:`vrpsam.data.synthetic_scenes`: every class has a fixed look (shape,
palette, texture), objects vary in scale and occlude each other over a cluttered background.

Defaults: VOC 600 images (420 train / 180 val), COCO 1200 images (780 train2014 / 420 val2014),
256×256. Each image draws its classes
(VOC 2-4, COCO 2-5) from the test classes of one fold (PASCAL-5i: ``5f+1..5f+5``; COCO-20i:
``f+1, f+5, ...``), so that BAM's filter (training images must not show a novel class) keeps 3/4 of
the training images, not ~40%, and the fold lists are the same with the filter on (runs) or off
(the COCO reader's own default). 10% of the COCO images hold a crowd (``iscrowd=1``).

Every class of every fold can form episodes, by construction. A tree is made for a size threshold,
:func:`synthetic_min_pixels` of its image size unless given, recorded in its marker file
(:data:`MARKER`) and used by ``vrpsam-data verify``. Read with that threshold and the default
hold-out (``val_fraction=0.1``, ``val_seed=0``, a top-up of 2 images, the rule's default, or 6, the
readers' ``val_min_per_class`` default today), every class of every fold has at least 2
listed images in ``train``, ``val`` and ``test`` on trees of at least :data:`MIN_IMAGES` images of
at least :data:`MIN_SIZE` pixels, and at least 6 (5-shot) in every split that has room for them:
all three on the VOC default, ``train`` and ``test`` on the COCO default (its 74 held-out images
cannot hold 6 images of each of 80 classes; they give 2 or more). How:

1. *plan*: class draws are balanced within three pools, the test list, the training images that the
   hold-out hash keeps back for ``val`` (known from the ids alone) and the other training images;
   a class still below its pool's goal (6 when the pool has room for it, else 2) is added to
   scenes of its group that have room;
2. *render* every scene once, in parallel;
3. *check and re-draw*: the fold lists are built through the real readers from the rendered pixel
   counts; a class short in a split gets re-drawn scenes from the matching pool, first scenes that
   planned it but show too little of it, then scenes of its group with room (the class is added).
   A re-drawn scene is kept only when it lists every class it listed before plus the missing one,
   so lists only grow; the loop ends when nothing is short or no scene can take the class.

Same seed and arguments → byte-identical files (one random generator per image and attempt; sorted
JSON keys), with any number of ``workers``.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from vrpsam.artifacts.atomic import atomic_write_bytes, atomic_write_json
from vrpsam.data.base import SPLITS
from vrpsam.data.coco import CocoSource
from vrpsam.data.coco_index import import_pycocotools
from vrpsam.data.folds import COCO_CATEGORIES, NUM_FOLDS, PASCAL_CLASSES, holdout_images
from vrpsam.data.pascal import PascalSource
from vrpsam.data.synthetic_scenes import balanced_classes, boundary_ring, render_scene

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2
MARKER = "vrpsam_synthetic.json"
"""File at the top of every synthetic tree recording how it was made (and its size threshold)."""

MIN_IMAGES = {"voc": 120, "coco": 400}
"""Smallest trees (``images``) on which every class of every fold gets ≥ 2 images in each split."""
DEFAULT_IMAGES = {"voc": 600, "coco": 1200}
MIN_SIZE = 128
"""Smallest image side (pixels) for that guarantee. Lists are completed only when the threshold is
at most the share of the image that 400 pixels are at 128 px (2.4%): at 64 px few objects reach 400
pixels, so a 64-px tree is written as drawn unless a lower ``min_pixels`` is given."""
SHOTS_GOAL = (2, 6)
"""Images a class needs for a 1-shot and a 5-shot episode (references plus a target)."""

HOLDOUT = {"val_fraction": 0.1, "val_seed": 0}
"""The readers' default hold-out rule, which the plan assumes (recorded in the marker)."""

_REDRAW_TRIES = 24
"""Renders tried per re-draw; at 128 px a 4-class scene lists all its classes ~1 time in 5."""
_MAX_ROUNDS = 40

_SUPERCATEGORIES = (
    (1, "person"), (9, "vehicle"), (15, "outdoor"), (25, "animal"), (33, "accessory"),
    (43, "sports"), (51, "kitchen"), (61, "food"), (70, "furniture"), (77, "electronic"),
    (82, "appliance"), (90, "indoor"),
)  # fmt: skip
"""(last COCO category id of the group, supercategory name)."""


def synthetic_min_pixels(size: int) -> int:
    """The size threshold (``min_pixels``, ``min_area``) a tree of ``size``-px images is made for.

    ``400 · max(size, 256)² / 256²``: 400 pixels (20×20) up to 256-pixel images, growing with the
    image area above (1600 at 512). Objects cover the same share of the image at any size, so above
    256 px the threshold keeps the same share of them listed; below, the 400-pixel floor keeps every
    listed region large enough to serve as a reference (the demo reads its 256-px tree, and the test
    suite its 128-px trees, at 400). PFENet's 2048 on ~500×375-px VOC images is the same order
    (1.1% of the image; 400 at 256 px is 0.6%).
    """
    return round(400 * max(int(size), 256) ** 2 / 256**2)


def recorded_min_pixels(root: str | Path) -> int | None:
    """The size threshold a synthetic tree records in its marker file; None for other trees
    (and for trees of older generators, which record none)."""
    marker = Path(root) / MARKER
    try:
        value = json.loads(marker.read_text(encoding="utf-8"))["min_pixels"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def _run(worker, jobs: list[tuple], workers: int) -> list:
    if workers <= 1 or len(jobs) < 64:
        return [worker(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(worker, jobs, chunksize=16))


def _attempts(seed: int, code: int, index: int, start: int, tries: int) -> Iterator[tuple]:
    """``(attempt, generator)`` pairs; attempt 0 keeps the key of the first version's images."""
    for attempt in range(start, start + tries):
        key = [seed, code, index, 1] if attempt == 0 else [seed, code, index, 1, attempt]
        yield attempt, np.random.default_rng(key)


@dataclass(frozen=True)
class _Format:
    """Classes of a format and how scenes draw them: each scene from one of ``groups`` groups, the
    test classes of one fold (contiguous on PASCAL-5i, interleaved on COCO-20i)."""

    name: str
    n_classes: int
    interleaved: bool
    ks: tuple[int, ...]
    probs: tuple[float, ...]
    groups: int = NUM_FOLDS

    @property
    def group_size(self) -> int:
        return self.n_classes // self.groups

    def group_of(self, c: int) -> int:
        """Group of the 0-based class ``c``."""
        return c % self.groups if self.interleaved else c // self.group_size

    def members(self, group: int) -> np.ndarray:
        """0-based classes of ``group``."""
        if self.interleaved:
            return np.arange(group, self.n_classes, self.groups)
        return np.arange(group * self.group_size, (group + 1) * self.group_size)


_VOC = _Format("voc", len(PASCAL_CLASSES), False, (2, 3, 4), (0.3, 0.45, 0.25))
_COCO = _Format("coco", len(COCO_CATEGORIES), True, (2, 3, 4, 5), (0.25, 0.35, 0.25, 0.15))


def _topups() -> tuple[int, ...]:
    """The hold-out top-ups in play: the rule's default (``holdout_images``) and the readers'
    (``val_min_per_class``), which may differ. A small top-up gives ``val`` fewer images, a large
    one ``train``: the tree is completed for both, so it keeps its guarantee under either."""
    defaults = {
        inspect.signature(holdout_images).parameters["min_per_class"].default,
        inspect.signature(PascalSource).parameters["val_min_per_class"].default,
        inspect.signature(CocoSource).parameters["val_min_per_class"].default,
    }
    return tuple(sorted(defaults))


_POOL_OF_SPLIT = {"train": ("rest",), "val": ("held", "rest"), "test": ("test",)}
"""Pools whose scenes can give a short class another image in a reader split. A class short in
``val`` on a small tree may have no held-out scene with room: more training images of it then let
the hold-out top-up (a fifth of the class, at most 2) reach it."""


@dataclass(eq=False)
class _Scene:
    """One image of the tree and the state of its rendering."""

    code: int  # split number: part of the image's random key
    index: int  # position in its split
    image_id: str  # the readers' id (VOC id, COCO file stem)
    pool: str  # "test", "held" (a training image the hold-out hash keeps back) or "rest"
    group: int = 0
    plan: list[int] = field(default_factory=list)  # 0-based classes, in drawing order
    attempt: int = 0  # the attempt whose files are on disk
    tried: int = 0  # last attempt rendered
    listed: frozenset[int] = frozenset()  # 1-based class ids at or above the size threshold
    result: Any = None  # VOC: pixel counts; COCO: (annotations, reader areas)


class _Tree:
    """Plans, renders and completes one synthetic tree (see the module docstring)."""

    fmt: _Format
    worker: Callable[[tuple], Any]

    def __init__(self, out: Path, seed: int, size: int, threshold: int, workers: int) -> None:
        self.out, self.seed, self.size = out, seed, size
        self.threshold, self.workers = threshold, workers
        self.scenes: list[_Scene] = []

    def add_split(self, code: int, ids: list[str], *, training: bool) -> None:
        held = set()
        if training:
            held = holdout_images(
                {0: ids},
                fraction=HOLDOUT["val_fraction"],
                seed=HOLDOUT["val_seed"],
                min_per_class=0,
            )
        for index, image_id in enumerate(ids):
            pool = "test" if not training else "held" if image_id in held else "rest"
            self.scenes.append(_Scene(code, index, image_id, pool))

    def pool(self, name: str) -> list[_Scene]:
        return [s for s in self.scenes if s.pool == name]

    def goal(self, name: str) -> int:
        """6 images per class when the pool's smallest group has room for 8 per class, else 2."""
        fmt, members = self.fmt, self.pool(name)
        smallest = min(sum(s.group == g for s in members) for g in range(fmt.groups))
        room = smallest * max(fmt.ks) / fmt.group_size
        return SHOTS_GOAL[1] if room >= 8 else SHOTS_GOAL[0]

    def plan(self) -> None:
        fmt, k_max = self.fmt, max(self.fmt.ks)
        for key, name in enumerate(("rest", "held", "test")):
            members = self.pool(name)
            rng = np.random.default_rng([self.seed, key, 0])
            counts = np.zeros(fmt.n_classes, np.int64)
            for j, scene in enumerate(members):
                scene.group = j % fmt.groups
                k = int(rng.choice(fmt.ks, p=fmt.probs))
                scene.plan = balanced_classes(rng, counts, fmt.members(scene.group), k)
            goal = self.goal(name) if members else 0
            for c in range(fmt.n_classes):
                # Random numbers of classes per scene can leave a class below the goal: give it to
                # the scenes of its group with the fewest classes.
                room = [
                    s
                    for s in members
                    if s.group == fmt.group_of(c) and c not in s.plan and len(s.plan) < k_max
                ]
                room.sort(key=lambda s: (len(s.plan), s.index))
                for scene in room[: max(0, goal - int(counts[c]))]:
                    scene.plan.append(c)
                    counts[c] += 1

    def job(self, scene: _Scene, plan: list[int], start: int, tries: int, required) -> tuple:
        raise NotImplementedError

    def listed(self, result: Any) -> frozenset[int]:
        raise NotImplementedError

    def reader_lists(self, topup: int) -> dict[tuple[int, str], Mapping[int, Any]]:
        """``(fold, split)`` → class id → listed image ids, built by the real readers with the
        hold-out top-up ``val_min_per_class=topup``."""
        raise NotImplementedError

    def render(self, todo: list[tuple[_Scene, list[int], frozenset[int]]], tries: int) -> list:
        """Render ``(scene, plan, required classes)`` jobs; keep the renders that list them all."""
        jobs = [
            self.job(scene, plan, scene.tried + 1 if scene.result else 0, tries, tuple(sorted(req)))
            for scene, plan, req in todo
        ]
        done = []
        for (scene, plan, _), result in zip(
            todo, _run(self.worker, jobs, self.workers), strict=True
        ):
            if result is None:
                scene.tried += tries
                continue
            scene.attempt = scene.tried = result[0]
            scene.plan, scene.result = plan, result[1]
            scene.listed = self.listed(result[1])
            done.append(scene)
        return done

    def build(self) -> dict[str, int]:
        """Plan, render and complete the tree; returns the fewest images of a class per split."""
        self.plan()
        self.render([(s, s.plan, frozenset()) for s in self.scenes], tries=1)
        goals = {split: self.goal(pools[0]) for split, pools in _POOL_OF_SPLIT.items()}
        failed: set[tuple[int, int, int]] = set()
        # Above that share of the image few objects reach the threshold: re-draws would be futile.
        reachable = self.threshold <= 400 * (self.size / MIN_SIZE) ** 2
        for round_ in range(_MAX_ROUNDS if reachable else 0):
            lists = self.all_lists()
            redraws = self._redraws(lists, goals, failed)
            if not redraws:
                break
            logger.debug("completion round %d: %d scenes re-drawn", round_, len(redraws))
            todo = []
            for scene, class_id in redraws:
                c = class_id - 1
                plan = scene.plan if c in scene.plan else [*scene.plan, c]
                todo.append((scene, plan, scene.listed | {class_id}))
            drawn = set(self.render(todo, tries=_REDRAW_TRIES))
            failed |= {(s.code, s.index, c) for s, c in redraws if s not in drawn}
        else:
            lists = self.all_lists()
        fewest = {
            split: min(
                len(ids) for key, by in lists.items() if key[1] == split for ids in by.values()
            )
            for split in SPLITS
        }
        if min(fewest.values()) < SHOTS_GOAL[0]:
            logger.warning(
                "synthetic %s tree at %s: some classes have fewer than 2 images in a fold split "
                "(fewest per split: %s); trees of at least %d images of at least %d px have 2 or "
                "more",
                self.fmt.name,
                self.out,
                fewest,
                MIN_IMAGES[self.fmt.name],
                MIN_SIZE,
            )
        return fewest

    def all_lists(self) -> dict[tuple[int, str, int], Mapping[int, Any]]:
        """``(fold, split, top-up)`` → class id → listed image ids, under each hold-out top-up."""
        return {
            (fold, split, topup): by_class
            for topup in _topups()
            for (fold, split), by_class in self.reader_lists(topup).items()
        }

    def _redraws(self, lists, goals: dict[str, int], failed) -> list[tuple[_Scene, int]]:
        """This round's re-draws: ``(scene, class id it must list)``, one class per scene."""
        fmt, k_max = self.fmt, max(self.fmt.ks)
        short: dict[tuple[str, int], int] = {}
        in_val: set[str] = set()
        for (_, split, _), by_class in lists.items():
            for class_id, ids in by_class.items():
                if split == "val":
                    in_val |= set(ids)
                deficit = goals[split] - len(ids)
                if deficit > 0:  # a class is base in 3 folds: keep its largest deficit
                    short[(split, class_id)] = max(short.get((split, class_id), 0), deficit)
        chosen: dict[_Scene, int] = {}
        for (split, class_id), deficit in sorted(short.items()):
            c = class_id - 1
            for name in _POOL_OF_SPLIT[split]:
                candidates = [
                    s
                    for s in self.pool(name)
                    if s.group == fmt.group_of(c)
                    and class_id not in s.listed
                    and (c in s.plan or len(s.plan) < k_max)
                    and s not in chosen
                    and (s.code, s.index, class_id) not in failed
                    # The hold-out top-up took it out of train: it would not count there.
                    and not (split == "train" and s.image_id in in_val)
                ]
                # Scenes that planned the class but show too little of it first, then the emptiest.
                candidates.sort(key=lambda s: (c not in s.plan, len(s.plan), s.code, s.index))
                for scene in candidates[:deficit]:
                    chosen[scene] = class_id
                if candidates:
                    break
        return list(chosen.items())


def _voc_image(job: tuple) -> tuple[int, dict[int, int]] | None:
    """Render one VOC image; write it and return ``(attempt, pixel counts)`` when its first render
    from ``start`` lists every ``required`` class, else ``None``."""
    out, image_id, classes, seed, code, index, size, palette, threshold, start, tries, required = (
        job
    )
    for attempt, rng in _attempts(seed, code, index, start, tries):
        scene = render_scene(rng, size=size, classes=list(classes))
        lut = np.array([0, *[c + 1 for c in scene.classes]], np.uint8)
        label = lut[scene.instances]
        label[boundary_ring(scene.instances)] = 255
        # The reader's count (pascal.scan_pixel_counts): class pixels outside the boundary band.
        hist = np.bincount(label.ravel(), minlength=256)[1 : len(PASCAL_CLASSES) + 1]
        counts = {c + 1: int(n) for c, n in enumerate(hist) if n}
        if any(counts.get(c, 0) < threshold for c in required):
            continue
        png = Image.fromarray(label, mode="P")
        png.putpalette(palette)
        atomic_write_bytes(
            out / "JPEGImages" / f"{image_id}.jpg",
            _encode(Image.fromarray(scene.image), "JPEG", quality=90),
        )
        atomic_write_bytes(out / "SegmentationClassAug" / f"{image_id}.png", _encode(png, "PNG"))
        return attempt, counts
    return None


class _VocTree(_Tree):
    fmt = _VOC
    worker = staticmethod(_voc_image)
    palette = voc_palette()

    def job(self, scene: _Scene, plan: list[int], start: int, tries: int, required) -> tuple:
        return (
            self.out, scene.image_id, tuple(plan), self.seed, scene.code, scene.index, self.size,
            self.palette, self.threshold, start, tries, required,
        )  # fmt: skip

    def listed(self, result: Any) -> frozenset[int]:
        return frozenset(c for c, n in result.items() if n >= self.threshold)

    def reader_lists(self, topup: int) -> dict[tuple[int, str], Mapping[int, Any]]:
        counts = {s.image_id: s.result for s in self.scenes}
        return {
            (fold, split): PascalSource(
                root=self.out,
                fold=fold,
                split=split,
                lists="generate",
                min_pixels=self.threshold,
                pixel_counts=counts,
                val_min_per_class=topup,
            ).image_ids_by_class()
            for fold in range(NUM_FOLDS)
            for split in SPLITS
        }


def write_voc_tree(
    out: str | Path,
    *,
    images: int = 600,
    seed: int = 0,
    size: int = 256,
    val_share: float = 0.3,
    min_pixels: int | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a VOC2012/SBD-style tree: JPEGImages, SegmentationClassAug, ImageSets/Segmentation.

    Masks are palette PNGs with VOC ids 0..20 and a 255 band around every object outline (like
    SBD/VOC boundaries). ``train.txt`` plays the SBD 'trainaug' list, ``val.txt`` VOC val (the test
    pool). Every class of every fold gets episodes (see the module docstring): at least 2 images
    per split from ``images >= 120`` and ``size >= 128``, at least 6 on the defaults.

    Args:
        out: folder to write (created; must be empty unless ``overwrite``).
        images: total number of images; ``val_share`` of them go to ``val.txt``.
        seed: random seed; same seed and arguments → identical bytes.
        size: image side in pixels.
        val_share: share of images in ``val.txt``.
        min_pixels: the size threshold the lists are completed for (default
            :func:`synthetic_min_pixels`); recorded in the marker, read by ``vrpsam-data verify``.
        workers: processes used to render (default: CPU count, at most 4).
        overwrite: write into a non-empty folder.

    Returns:
        The tree's root (pass it as ``data.root``).
    """
    out = _prepare_out(out, "voc", overwrite)
    threshold = synthetic_min_pixels(size) if min_pixels is None else int(min_pixels)
    n_val = max(1, round(images * val_share))
    tree = _VocTree(out, seed, size, threshold, workers or min(4, os.cpu_count() or 1))
    for code, (split, n) in enumerate((("train", images - n_val), ("val", n_val))):
        ids = [f"synth_{split}_{i:06d}" for i in range(n)]
        tree.add_split(code, ids, training=split == "train")
        # The readers that check the tree while it is completed read these lists.
        text = "".join(f"{i}\n" for i in ids).encode()
        atomic_write_bytes(out / "ImageSets" / "Segmentation" / f"{split}.txt", text)
    (out / "JPEGImages").mkdir(exist_ok=True)
    (out / "SegmentationClassAug").mkdir(exist_ok=True)
    fewest = tree.build()
    _write_marker(out, "voc", images, seed, size, val_share, threshold, fewest)
    return out


def _write_marker(out: Path, fmt: str, images, seed, size, val_share, threshold, fewest) -> None:
    meta = {
        "format": fmt,
        "images": images,
        "seed": seed,
        "size": size,
        "val_share": val_share,
        "generator_version": GENERATOR_VERSION,
        # The readers' size threshold (min_pixels for PASCAL, min_area for COCO) the lists were
        # completed for; `vrpsam-data verify` uses it when --min-pixels is not given.
        "min_pixels": threshold,
        # The hold-out the lists were completed for: fewest images under each of these top-ups.
        "holdout": {**HOLDOUT, "val_min_per_class": list(_topups())},
        "min_images_per_class": fewest,
    }
    atomic_write_json(out / MARKER, meta, indent=1)


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


def _annotations(scene, image_id: int) -> list[dict]:
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


def _reader_areas(annotations: list[dict], size: int) -> dict[int, list[int]]:
    """Class index → ``[area, area_crowd]`` as the COCO index computes them (pycocotools masks of
    the polygons, which lose part of the outline pixels, and of the RLEs; unions per class)."""
    _, mask_utils = import_pycocotools()
    class_of = {cat_id: index for index, (cat_id, _) in enumerate(COCO_CATEGORIES, start=1)}
    groups: dict[int, tuple[list, list]] = {}
    for ann in annotations:
        segmentation = ann["segmentation"]
        rle = mask_utils.frPyObjects(segmentation, size, size)
        if isinstance(segmentation, list):
            rle = mask_utils.merge(rle)
        groups.setdefault(class_of[ann["category_id"]], ([], []))[ann["iscrowd"]].append(rle)
    areas = {}
    for class_index, parts in groups.items():
        areas[class_index] = [
            int(
                mask_utils.area(
                    mask_utils.merge(rles, intersect=False) if len(rles) > 1 else rles[0]
                )
            )
            if rles
            else 0
            for rles in parts
        ]
    return areas


def _coco_image(job: tuple) -> tuple[int, tuple[list[dict], dict]] | None:
    """Render one COCO image; write it and return ``(attempt, (annotations, reader areas))`` when
    its first render from ``start`` lists every ``required`` class, else ``None``."""
    out, folder, stem, image_id, classes, seed, code, index, size, threshold = job[:10]
    start, tries, required = job[10:]
    for attempt, rng in _attempts(seed, code, index, start, tries):
        scene = render_scene(rng, size=size, classes=list(classes), crowd_prob=0.1)
        annotations = _annotations(scene, image_id)
        areas = _reader_areas(annotations, size)
        # CocoSource's default counts crowd regions as foreground: area + area_crowd.
        if any(sum(areas.get(c, (0, 0))) < threshold for c in required):
            continue
        data = _encode(Image.fromarray(scene.image), "JPEG", quality=90)
        atomic_write_bytes(out / folder / f"{stem}.jpg", data)
        return attempt, (annotations, areas)
    return None


class _CocoTree(_Tree):
    fmt = _COCO
    worker = staticmethod(_coco_image)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folders: dict[int, str] = {}
        self.numbers: dict[str, int] = {}  # stem → COCO image id

    def job(self, scene: _Scene, plan: list[int], start: int, tries: int, required) -> tuple:
        return (
            self.out, self.folders[scene.code], scene.image_id, self.numbers[scene.image_id],
            tuple(plan), self.seed, scene.code, scene.index, self.size, self.threshold, start,
            tries, required,
        )  # fmt: skip

    def listed(self, result: Any) -> frozenset[int]:
        return frozenset(c for c, parts in result[1].items() if sum(parts) >= self.threshold)

    def index(self, code: int) -> dict:
        """An in-memory COCO index (the layout of :mod:`vrpsam.data.coco_index`) with areas only."""
        images = {}
        for scene in self.scenes:
            if scene.code == code:
                classes = {
                    str(c): {"area": a, "area_crowd": ac, "rle": None, "crowd_rle": None}
                    for c, (a, ac) in sorted(scene.result[1].items())
                }
                images[scene.image_id] = {
                    "file_name": f"{scene.image_id}.jpg",
                    "height": self.size,
                    "width": self.size,
                    "classes": classes,
                }
        return {"images": images}

    def reader_lists(self, topup: int) -> dict[tuple[int, str], Mapping[int, Any]]:
        indexes = {code: self.index(code) for code in (0, 1)}
        return {
            (fold, split): CocoSource(
                root=self.out,
                fold=fold,
                split=split,
                min_area=self.threshold,
                index=indexes[1 if split == "test" else 0],
                val_min_per_class=topup,
            ).image_ids_by_class()
            for fold in range(NUM_FOLDS)
            for split in SPLITS
        }


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
    min_pixels: int | None = None,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a COCO 2014-style tree: train2014, val2014, annotations/instances_{train,val}2014.json.

    Categories carry the real COCO ids and names; instances are polygons (RLE where occlusion
    leaves a hole), crowds are RLE with ``iscrowd=1``; ``area`` is the visible pixel count,
    ``bbox`` is ``[x, y, w, h]``. Every class of every fold gets episodes (see the module
    docstring): at least 2 images per split from ``images >= 400`` and ``size >= 128``. Arguments
    as :func:`write_voc_tree` (``min_pixels`` is the readers' ``min_area``).

    Returns:
        The tree's root (pass it as ``data.root``).
    """
    out = _prepare_out(out, "coco", overwrite)
    threshold = synthetic_min_pixels(size) if min_pixels is None else int(min_pixels)
    n_val = max(1, round(images * val_share))
    tree = _CocoTree(out, seed, size, threshold, workers or min(4, os.cpu_count() or 1))
    splits = (("train2014", images - n_val), ("val2014", n_val))
    numbers: dict[int, list[int]] = {}
    next_image_id = 1
    for code, (folder, n) in enumerate(splits):
        numbers[code] = list(range(next_image_id, next_image_id + n))
        next_image_id += n
        stems = [f"COCO_{folder}_{i:012d}" for i in numbers[code]]
        tree.folders[code] = folder
        tree.numbers.update(zip(stems, numbers[code], strict=True))
        tree.add_split(code, stems, training=code == 0)
        (out / folder).mkdir(parents=True, exist_ok=True)
    fewest = tree.build()
    for code, (folder, _) in enumerate(splits):
        scenes = [s for s in tree.scenes if s.code == code]
        annotations = [dict(a) for s in scenes for a in s.result[0]]
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
                {
                    "id": tree.numbers[s.image_id],
                    "file_name": f"{s.image_id}.jpg",
                    "width": size,
                    "height": size,
                    "license": 1,
                }
                for s in scenes
            ],
            "annotations": annotations,
            "categories": _categories(),
        }
        atomic_write_json(out / "annotations" / f"instances_{folder}.json", payload)
    _write_marker(out, "coco", images, seed, size, val_share, threshold, fewest)
    return out
