"""Write a synthetic tree in LVIS v1's on-disk format: COCO 2017 image folders and raw LVIS json.

Layout: ``train2017/<12 digits>.jpg``, ``val2017/<12 digits>.jpg``,
``annotations/lvis_v1_{train,val}.json``. As in the real release, image entries carry no
``file_name``: the file is the last two parts of ``coco_url``
(``http://images.cocodataset.org/train2017/000000391895.jpg``), and some images of the val json live
in ``train2017/``. Segmentations are polygons only (LVIS has no RLE and no ``iscrowd``); category
ids run 1..N with ``image_count``/``instance_count`` counted from the json's own annotations and
``frequency`` from the training counts (LVIS: rare ≤ 10 images, common ≤ 100, frequent above).

Scenes come from :func:`~vrpsam.data.synthetic_scenes.render_scene`: 2-4 categories per image,
balanced draws, sometimes two instances of one category (the reader unions them). A render is kept
when every planned category shows at least :func:`lvis_min_pixels` pixels; categories short of
:data:`MIN_IMAGES_PER_CATEGORY` images in a split are added to more scenes. Same seed and arguments
→ byte-identical files.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vrpsam.artifacts.atomic import atomic_write_bytes, atomic_write_json
from vrpsam.data.synthetic import MARKER, _prepare_out
from vrpsam.data.synthetic_scenes import balanced_classes, render_scene

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
MIN_IMAGES_PER_CATEGORY = 6
"""Images a category needs in a split for 5-shot episodes (5 references and a target)."""
VAL_IN_TRAIN2017 = 0.2
"""Share of the val json's images stored in ``train2017/`` (at least 2 when val has room)."""
COCO_URL = "http://images.cocodataset.org/{folder}/{id:012d}.jpg"
_KS, _PROBS = (2, 3, 4), (0.3, 0.45, 0.25)
_TRIES = 12
_ROUNDS = 8
_MIN_PART = 4
"""Pixels of the smallest polygon part kept."""

_NAMES = (
    ("acorn", "acorn.n.01", "fruit of the oak tree"),
    ("anvil", "anvil.n.01", "a heavy block of iron on which metal is hammered"),
    ("bat_(animal)", "bat.n.01", "nocturnal flying mammal"),
    ("beanbag", "beanbag.n.01", "a small cloth bag filled with dried beans"),
    ("bell", "bell.n.01", "a hollow device that rings when struck"),
    ("birdhouse", "birdhouse.n.01", "a shelter for birds"),
    ("bolo_tie", "bolo_tie.n.01", "a cord fastened around the neck with an ornamental clasp"),
    ("buoy", "buoy.n.01", "bright-coloured float that marks a channel"),
    ("cactus", "cactus.n.01", "a spiny plant of dry places"),
    ("candle", "candle.n.01", "stick of wax with a wick in the middle"),
    ("chime", "chime.n.01", "a set of tuned bells"),
    ("cornet", "cornet.n.01", "a brass instrument resembling a trumpet"),
    ("crab_(animal)", "crab.n.01", "decapod with a broad carapace"),
    ("dartboard", "dartboard.n.01", "a circular board of wood or cork used as the target"),
    ("dumbbell", "dumbbell.n.01", "an exercising weight"),
    ("easel", "easel.n.01", "an upright tripod for displaying something"),
    ("fig_(fruit)", "fig.n.04", "sweet fleshy pear-shaped fruit"),
    ("flowerpot", "flowerpot.n.01", "a container in which plants are cultivated"),
    ("gourd", "gourd.n.02", "bottle-shaped fruit with a hard rind"),
    ("hammock", "hammock.n.02", "a hanging bed of canvas or netting"),
    ("hourglass", "hourglass.n.01", "a sandglass that runs for an hour"),
    ("kite", "kite.n.03", "plaything of a light frame covered with paper, flown in the wind"),
    ("lantern", "lantern.n.01", "light in a transparent protective case"),
    ("lemon", "lemon.n.01", "yellow oval fruit with juicy acidic flesh"),
    ("mailbox_(at_home)", "mailbox.n.01", "a private box for delivery of mail"),
    ("mitten", "mitten.n.01", "glove that encases the thumb and the four fingers together"),
    ("nutcracker", "nutcracker.n.01", "a compound lever used to crack nuts"),
    ("pinwheel", "pinwheel.n.02", "a toy with vanes that turn in the wind"),
    ("poker_chip", "chip.n.02", "a small disk used as a counter in games"),
    ("pretzel", "pretzel.n.01", "glazed and salted cracker typically in the shape of a loose knot"),
    ("quilt", "quilt.n.01", "bedding made of two layers of cloth filled with stuffing"),
    ("sawhorse", "sawhorse.n.01", "a framework for holding wood that is being sawed"),
    ("scarecrow", "scarecrow.n.01", "an effigy in the shape of a man set up to frighten birds"),
    ("seashell", "seashell.n.01", "the shell of a marine organism"),
    ("snowman", "snowman.n.01", "a figure of a person made of packed snow"),
    ("starfish", "starfish.n.01", "echinoderms with five radiating arms"),
    ("thimble", "thimble.n.02", "a small metal cap to protect the finger while sewing"),
    ("trowel", "trowel.n.01", "a small hand tool with a handle and a flat metal blade"),
    ("weathervane", "weathervane.n.01", "a mechanical device attached to a roof to show wind"),
    ("whistle", "whistle.n.03", "acoustic device that forces air or steam to make a sound"),
    ("windmill", "windmill.n.01", "a mill powered by the wind"),
    ("yoyo", "yo-yo.n.01", "a toy spool that rises and falls on a string"),
)  # fmt: skip
"""(name, synset, definition) of the first categories; further ones are ``synthetic_<id>``."""


def lvis_min_pixels(size: int) -> int:
    """Visible pixels every planned category must reach in a scene: 2.4% of the image, 400 at
    128 px (the COCO writer's threshold at that size)."""
    return max(16, round(400 * size**2 / 128**2))


def frequency(image_count: int) -> str:
    """LVIS's frequency group of a category with ``image_count`` training images."""
    return "r" if image_count <= 10 else "c" if image_count <= 100 else "f"


def _without_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with a one-pixel cut from every hole up to the outside: polygons cannot carry
    holes (pycocotools fills them), so the region is reshaped to need none."""
    mask = mask.astype(np.uint8)
    while True:
        padded = np.pad(1 - mask, 1, constant_values=1)
        _, labels = cv2.connectedComponents(padded, connectivity=4)
        holes = (labels[1:-1, 1:-1] != labels[0, 0]) & (mask == 0)
        if not holes.any():
            return mask
        ys, xs = np.nonzero(holes)
        y, x = ys[0], xs[0]  # the topmost (then leftmost) hole pixel: above it lies the object
        while y > 0 and mask[y - 1, x]:
            mask[y - 1, x] = 0
            y -= 1


def polygons(mask: np.ndarray) -> tuple[list[list[float]], np.ndarray]:
    """LVIS polygons of a binary mask and the mask pycocotools rebuilds from them.

    Contours are traced on the mask at 2× so that the polygons run along pixel edges, not pixel
    centres: ``annToMask`` then gives back exactly the returned mask (the input without parts below
    :data:`_MIN_PART` pixels and without the one-pixel cuts that open its holes).

    Args:
        mask: ``bool`` (H, W).

    Returns:
        ``([[x1, y1, x2, y2, ...], ...], mask)``; no polygons for an empty result.
    """
    mask = _without_holes(mask)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    small = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] < _MIN_PART]
    mask[np.isin(labels, small)] = 0
    big = cv2.resize(mask, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [((c.reshape(-1) + 0.5) / 2).tolist() for c in contours if len(c) >= 3]
    return polys, mask.astype(bool)


def _render(seed: int, code: int, index: int, plan: list[int], size: int, first: int) -> tuple:
    """``(attempt, scene)``: the first render from attempt ``first`` on in which every planned
    category shows enough pixels, else the one that showed most of them."""
    threshold, best = lvis_min_pixels(size), None
    for attempt in range(first, first + _TRIES):
        rng = np.random.default_rng([seed, code, index, attempt])
        scene = render_scene(
            rng, size=size, classes=list(plan), duplicate_prob=0.35, small_prob=0.1
        )
        ids = np.array([0, *[c + 1 for c in scene.classes]])[scene.instances]
        shown = sum(int((ids == c + 1).sum()) >= threshold for c in plan)
        if best is None or shown > best[0]:
            best = (shown, attempt, scene)
        if shown == len(plan):
            break
    return best[1], best[2]


def _annotations(scene, image_id: int) -> list[dict]:
    annotations = []
    for k, c in enumerate(scene.classes, start=1):
        polys, mask = polygons(scene.instances == k)
        if not polys:
            continue
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        annotations.append(
            {
                "image_id": image_id,
                "category_id": c + 1,
                "segmentation": polys,
                "area": float(mask.sum()),
                "bbox": [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)],
            }
        )
    return annotations


def _shown(annotations: list[dict], threshold: int) -> set[int]:
    """Category ids whose instances (which do not overlap) reach ``threshold`` pixels together."""
    area: dict[int, float] = {}
    for ann in annotations:
        area[ann["category_id"]] = area.get(ann["category_id"], 0.0) + ann["area"]
    return {c for c, a in area.items() if a >= threshold}


def _category(cat_id: int) -> dict:
    if cat_id <= len(_NAMES):
        name, synset, definition = _NAMES[cat_id - 1]
    else:
        name, synset, definition = f"synthetic_{cat_id}", f"synthetic_{cat_id}.n.01", "a shape"
    synonyms = [name] if "_(" in name else [name, name.replace("_", " ")]
    return {"id": cat_id, "name": name, "synset": synset, "synonyms": sorted(set(synonyms)),
            "def": definition}  # fmt: skip


class _Split:
    """Plans, renders and completes the scenes of one json (``code`` 0: train, 1: val)."""

    def __init__(self, code: int, n: int, categories: int, seed: int, size: int) -> None:
        self.code, self.seed, self.size, self.categories = code, seed, size, categories
        rng = np.random.default_rng([seed, code, 0])
        counts = np.zeros(categories, np.int64)
        pool = np.arange(categories)
        self.plans = [
            balanced_classes(rng, counts, pool, int(rng.choice(_KS, p=_PROBS))) for _ in range(n)
        ]
        self.attempts = [0] * n
        self.scenes: list = [None] * n
        self.annotations: list[list[dict]] = [[] for _ in range(n)]

    def render(self, index: int, image_id: int, first: int) -> None:
        plan = self.plans[index]
        attempt, scene = _render(self.seed, self.code, index, plan, self.size, first)
        self.attempts[index], self.scenes[index] = attempt, scene
        self.annotations[index] = _annotations(scene, image_id)

    def images_of(self) -> dict[int, list[int]]:
        """Category id → indices of the scenes that show it with enough pixels."""
        threshold = lvis_min_pixels(self.size)
        by_cat: dict[int, list[int]] = {c: [] for c in range(1, self.categories + 1)}
        for index, anns in enumerate(self.annotations):
            for c in _shown(anns, threshold):
                by_cat[c].append(index)
        return by_cat

    def complete(self, image_ids: list[int]) -> int:
        """Add short categories to more scenes; returns the fewest images of a category."""
        for _ in range(_ROUNDS):
            by_cat = self.images_of()
            short = [c for c, idx in by_cat.items() if len(idx) < MIN_IMAGES_PER_CATEGORY]
            if not short:
                break
            touched: set[int] = set()
            for c in short:
                room = [
                    i
                    for i, plan in enumerate(self.plans)
                    if c - 1 not in plan and len(plan) < max(_KS) and i not in touched
                ]
                room.sort(key=lambda i: (len(self.plans[i]), i))
                for i in room[: MIN_IMAGES_PER_CATEGORY - len(by_cat[c])]:
                    self.plans[i] = [*self.plans[i], c - 1]
                    touched.add(i)
            for i in sorted(touched):
                self.render(i, image_ids[i], self.attempts[i] + 1)
        return min((len(idx) for idx in self.images_of().values()), default=0)


def _encode_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_lvis_tree(
    out: str | Path,
    *,
    seed: int = 0,
    categories: int = 40,
    images: tuple[int, int] = (160, 120),
    size: int = 128,
    overwrite: bool = False,
) -> Path:
    """Write an LVIS v1-style tree (see the module docstring).

    Args:
        out: folder to write (the LVIS root, holding ``train2017``, ``val2017``, ``annotations``);
            created, must be empty unless ``overwrite``.
        seed: random seed; same seed and arguments → identical bytes.
        categories: number of categories (ids ``1..categories``).
        images: images of the train and the val json.
        size: image side in pixels.
        overwrite: write into a non-empty folder.

    Returns:
        The tree's root.
    """
    out = _prepare_out(out, "lvis", overwrite)
    n_train, n_val = (int(n) for n in images)
    rng = np.random.default_rng([seed, 11])
    ids = [int(i) for i in rng.choice(np.arange(1, 581930), n_train + n_val, replace=False)]
    ids_of = {0: ids[:n_train], 1: ids[n_train:]}
    n_moved = min(n_val, max(2, round(VAL_IN_TRAIN2017 * n_val)))
    moved = {ids_of[1][int(i)] for i in rng.choice(n_val, n_moved, replace=False)}
    splits = [_Split(code, len(ids_of[code]), categories, seed, size) for code in (0, 1)]
    fewest = {}
    for split, name in zip(splits, ("train", "val"), strict=True):
        for index, image_id in enumerate(ids_of[split.code]):
            split.render(index, image_id, 0)
        fewest[name] = split.complete(ids_of[split.code])
        if fewest[name] < MIN_IMAGES_PER_CATEGORY:
            logger.warning("synthetic LVIS %s json: a category has %d images", name, fewest[name])
    train_counts = _counts(splits[0].annotations)[0]
    next_ann = 1
    for split, name in zip(splits, ("train", "val"), strict=True):
        entries = []
        for index, image_id in enumerate(ids_of[split.code]):
            folder = "train2017" if split.code == 0 or image_id in moved else "val2017"
            atomic_write_bytes(
                out / folder / f"{image_id:012d}.jpg", _encode_jpeg(split.scenes[index].image)
            )
            entries.append(
                _image_entry(image_id, folder, size, split.annotations[index], seed, categories)
            )
        annotations = [dict(a) for anns in split.annotations for a in anns]
        for ann in annotations:
            ann["id"], next_ann = next_ann, next_ann + 1
        image_count, instance_count = _counts(split.annotations)
        payload = {
            "info": {"description": "vrpsam synthetic LVIS-style data", "version": "1.0",
                     "year": 2020, "contributor": "vrpsam", "date_created": "2020-01-01"},
            "licenses": [{"id": 1, "name": "Attribution License",
                          "url": "http://creativecommons.org/licenses/by/2.0/"}],
            "images": entries,
            "annotations": annotations,
            "categories": [
                _category(c) | {"image_count": image_count.get(c, 0),
                                "instance_count": instance_count.get(c, 0),
                                "frequency": frequency(train_counts.get(c, 0))}
                for c in range(1, categories + 1)
            ],
        }  # fmt: skip
        atomic_write_json(out / "annotations" / f"lvis_v1_{name}.json", payload)
    meta = {
        "format": "lvis",
        "seed": seed,
        "size": size,
        "categories": categories,
        "images": {"train": n_train, "val": n_val},
        "val_in_train2017": len(moved),
        "min_pixels": lvis_min_pixels(size),
        "min_images_per_category": fewest,
        "generator_version": GENERATOR_VERSION,
    }
    atomic_write_json(out / MARKER, meta, indent=1)
    return out


def _counts(per_image: list[list[dict]]) -> tuple[dict[int, int], dict[int, int]]:
    """(category id → images holding it, category id → instances) of one json's annotations."""
    images: dict[int, int] = {}
    instances: dict[int, int] = {}
    for anns in per_image:
        for c in {a["category_id"] for a in anns}:
            images[c] = images.get(c, 0) + 1
        for a in anns:
            instances[a["category_id"]] = instances.get(a["category_id"], 0) + 1
    return images, instances


def _image_entry(
    image_id: int, folder: str, size: int, annotations: list[dict], seed: int, categories: int
) -> dict:
    """An LVIS v1 image record: no ``file_name``; the file is named by ``coco_url``."""
    rng = np.random.default_rng([seed, 17, image_id])
    present = sorted({a["category_id"] for a in annotations})
    # LVIS's federated labels: a few categories verified absent, rarely one not exhaustively done.
    absent = [c for c in range(1, categories + 1) if c not in present]
    neg = sorted(int(c) for c in rng.choice(absent, min(len(absent), 2), replace=False))
    not_exhaustive = [present[0]] if present and rng.random() < 0.1 else []
    return {
        "id": image_id,
        "width": size,
        "height": size,
        "license": 1,
        "coco_url": COCO_URL.format(folder=folder, id=image_id),
        "flickr_url": f"http://farm{1 + image_id % 9}.staticflickr.com/{image_id}_synthetic_z.jpg",
        "date_captured": f"2013-11-{1 + image_id % 28:02d} 12:00:00",
        "neg_category_ids": neg,
        "not_exhaustive_category_ids": not_exhaustive,
    }
