"""Many classes at once: the splits, the reference bank and the episodes of ``task=semantic``.

Two forms (:mod:`vrpsam.engine.semantic` scores them):

* ``all``: every class of the dataset in every test image, as semantic segmentation scores it
  (PASCAL VOC: 20 classes + background on the VOC val list; COCO: 80 + background on val2014).
  The bank holds K annotated references per class from the training list
  (:func:`draw_references`); the presence threshold is chosen on held-out training images
  (:attr:`SemanticSplits.val`), never on test images.
* ``nway``: the generalised few-shot form — N classes of a fold's novel classes per episode,
  K references each from the fold's test pool (:func:`make_nway_episodes`).

Every draw is seeded with ``numpy.random.SeedSequence`` keys, as in :mod:`vrpsam.data.sampling`:
a bank or an episode list is a pure function of its arguments, the same for every method, and
prefix-stable (K references are the first K of K + 1; N episodes the first N of N + 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vrpsam.data.base import IGNORE_INDEX, FewShotSource
from vrpsam.data.folds import all_classes

SEMANTIC_DATASETS = ("pascal", "coco")
"""Datasets with an all-classes form (``data.dataset``); ``data=synthetic`` is a VOC tree."""

FORMS = ("all", "nway")

# Stream tags: the bank and the N-way lists draw apart from each other and from sampling.py's.
_BANK_STREAM = 11
_NWAY_STREAM = 12


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


@dataclass(frozen=True)
class SemanticSplits:
    """The fold-free splits of one dataset for the all-classes form.

    Attributes:
        dataset: ``pascal`` or ``coco``.
        classes: every class id of the dataset (1-indexed).
        train: the training list without the held-out images: where references come from.
        val: the held-out training images of the same classes: where the presence threshold
            is chosen.
        test: the evaluation images (VOC val / COCO val2014) holding any class at any size.
    """

    dataset: str
    classes: tuple[int, ...]
    train: FewShotSource
    val: FewShotSource
    test: FewShotSource


@dataclass(frozen=True)
class SemanticEpisode:
    """Segment ``class_ids`` at once in ``target_id``; ``reference_ids[i]`` annotate
    ``class_ids[i]`` (all-classes form: every class, the same bank for every target)."""

    target_id: str
    class_ids: tuple[int, ...]
    reference_ids: tuple[tuple[str, ...], ...]


def semantic_splits(
    dataset: str, root: str | Path, *, options: Mapping[str, Any] | None = None
) -> SemanticSplits:
    """The all-classes splits of ``dataset`` under ``root``.

    The readers are the few-shot ones with every class chosen: ``train``/``val`` with no novel
    class (every class is a base class; ``val`` is the seeded hold-out of
    :func:`~vrpsam.data.folds.holdout_images`), ``test`` with every class novel and any object
    size (a test image is scored whatever the size of its objects). The fold plays no part.

    Args:
        dataset: ``pascal`` or ``coco``.
        root: the VOC2012 or COCO 2014 folder.
        options: reader options (``data.source_options``: ``min_pixels``/``min_area`` for
            references, ``crowd``, ``val_fraction``, ...); ``lists`` does not apply (the
            PASCAL-5i lists are per fold).
    """
    if dataset not in SEMANTIC_DATASETS:
        raise ValueError(
            f"task=semantic reads {' or '.join(SEMANTIC_DATASETS)} (data=pascal5i, coco20i or "
            f"synthetic), got data.dataset={dataset!r}"
        )
    options = {k: v for k, v in dict(options or {}).items() if k not in ("lists", "exclude_novel")}
    classes = all_classes(dataset)
    if dataset == "pascal":
        from vrpsam.data.pascal import PascalSource, scan_pixel_counts
        from vrpsam.data.reading import read_id_list

        lists = Path(root).expanduser() / "ImageSets" / "Segmentation"
        train_ids = read_id_list(
            lists / options.get("train_list", "train.txt"), "see data/README.md"
        )
        counts = scan_pixel_counts(Path(root).expanduser(), train_ids)
        common = dict(root=root, fold=0, lists="generate", **options)
        train, val = (PascalSource(split=s, novel=(), pixel_counts=counts, **common)
                      for s in ("train", "val"))  # fmt: skip
        test = PascalSource(split="test", novel=classes, **{**common, "min_pixels": 1})
    else:
        from vrpsam.data.coco import CocoSource
        from vrpsam.data.coco_index import load_index

        root = Path(root).expanduser()
        index, _ = load_index(
            root / "annotations" / "instances_train2014.json",
            root / "train2014",
            cache_dir=options.get("cache_dir"),
        )
        common = dict(root=root, fold=0, **options)
        train, val = (CocoSource(split=s, novel=(), index=index, **common)
                      for s in ("train", "val"))  # fmt: skip
        test = CocoSource(split="test", novel=classes, **{**common, "min_area": 1})
    return SemanticSplits(dataset, classes, train, val, test)


def label_map(
    source: FewShotSource, image_id: str, keep: Sequence[int] | None = None
) -> np.ndarray:
    """The image's class-id map ``uint8`` (H, W): 0 background, class ids, 255 ignored.

    PASCAL reads its label PNG; other readers compose the map from :meth:`load_mask` of each
    present class of the source (a later class wins where masks overlap).

    Args:
        source: the split the image belongs to.
        image_id: the image.
        keep: the classes kept (an N-way episode's); every other class becomes background.
    """
    if hasattr(source, "load_label"):
        label = source.load_label(image_id).copy()
    else:
        label = None
        for class_id in source.classes_present(image_id):
            mask = source.load_mask(image_id, class_id)
            if label is None:
                label = np.zeros(mask.shape, np.uint8)
            label[mask == 1] = class_id
            label[(mask == IGNORE_INDEX) & (label == 0)] = IGNORE_INDEX
        if label is None:
            height, width = source.load_image(image_id).shape[:2]
            label = np.zeros((height, width), np.uint8)
    if keep is not None:
        drop = np.ones(256, dtype=bool)
        drop[[0, IGNORE_INDEX, *keep]] = False
        label[drop[label]] = 0
    return label


def draw_references(
    source: FewShotSource, classes: Sequence[int], k: int, seed: int
) -> dict[int, list[str]]:
    """K references per class, drawn from the class's listed images: ``{class: [image ids]}``.

    Each class walks a seeded permutation of its sorted list (keyed by the seed and the class
    only), so the draw does not depend on the method, on the other classes or on ``k`` beyond
    its length: ``k`` references are the first ``k`` of ``k + 1``.

    Raises:
        ValueError: ``k < 1``, a negative seed, or a class without any listed image.
    """
    if k < 1:
        raise ValueError(f"references_per_class must be >= 1, got {k}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    by_class = source.image_ids_by_class()
    bank, short = {}, {}
    for class_id in classes:
        pool = sorted(set(by_class.get(class_id, ())))
        if not pool:
            raise ValueError(
                f"{source.name} {source.split}: class {class_id} ({source.class_name(class_id)}) "
                "has no listed image to draw a reference from; check the data "
                "(`vrpsam-data verify`) or lower data.source_options.min_pixels/min_area"
            )
        order = _rng(seed, _BANK_STREAM, class_id).permutation(len(pool))
        bank[class_id] = [pool[i] for i in order[:k]]
        if len(pool) < k:
            short[class_id] = len(pool)
    if short:
        warnings.warn(
            f"{source.name} {source.split}: classes {short} have fewer than {k} images; their "
            "banks hold every image they have",
            stacklevel=2,
        )
    return bank


def all_class_episodes(
    source: FewShotSource, bank: Mapping[int, Sequence[str]], count: int | None = None
) -> list[SemanticEpisode]:
    """The all-classes form: one episode per image of ``source`` in list order (the first
    ``count``; None: all), every class of ``bank`` with its references."""
    classes = tuple(sorted(bank))
    references = tuple(tuple(bank[c]) for c in classes)
    images = list(source.image_order())
    if count is not None:
        images = images[: int(count)]
    return [SemanticEpisode(image_id, classes, references) for image_id in images]


def make_nway_episodes(
    source: FewShotSource,
    classes: Sequence[int],
    n_way: int,
    shot: int,
    seed: int,
    count: int,
) -> list[SemanticEpisode]:
    """N-way K-shot episodes of the generalised few-shot literature (background included).

    Episode ``i`` takes the target ``image_order()[i % images]`` (images that show a class able
    to give references), then its N classes: those present in the target (any size; a seeded
    choice when more than N), completed with absent ones (seeded); each class gets ``shot``
    distinct listed images other than the target. Ground truth is the target's label map
    restricted to the N classes (:func:`label_map` with ``keep``).

    Args:
        source: the pool (a fold's ``test`` source; its ``val`` source for the threshold).
        classes: the classes episodes draw from (the fold's novel classes).
        n_way: classes per episode.
        shot: references per class.
        seed: the list's seed.
        count: number of episodes.

    Raises:
        ValueError: bad sizes, or fewer than ``n_way`` classes can give references.
    """
    if shot < 1 or n_way < 1 or count < 1:
        raise ValueError(f"need ways, shot and episodes >= 1, got {n_way}, {shot}, {count}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    by_class = source.image_ids_by_class()
    pools = {c: sorted(set(by_class.get(c, ()))) for c in sorted(classes)}
    usable = [c for c, pool in pools.items() if len(pool) >= shot + 1]
    if len(usable) < n_way:
        raise ValueError(
            f"{source.name} {source.split}: {len(usable)} classes have shot + 1 = {shot + 1} "
            f"images ({usable}), fewer than ways = {n_way}; use fewer ways or a smaller shot"
        )

    def can_give(class_id: int, target: str) -> bool:
        return class_id in usable and len(pools[class_id]) - (target in pools[class_id]) >= shot

    order = list(source.image_order())
    present = {i: [c for c in sorted(source.classes_present(i)) if can_give(c, i)] for i in order}
    targets = [i for i in order if present[i]]
    if not targets:
        raise ValueError(f"{source.name} {source.split}: no image shows a class of {classes}")
    episodes = []
    for index in range(int(count)):
        rng = _rng(seed, _NWAY_STREAM, index)
        target = targets[index % len(targets)]
        shown = [present[target][j] for j in rng.permutation(len(present[target]))][:n_way]
        absent = [c for c in usable if c not in shown and can_give(c, target)]
        fill = [absent[j] for j in rng.permutation(len(absent))][: n_way - len(shown)]
        chosen = tuple(shown + fill)
        references = []
        for class_id in chosen:
            others = [i for i in pools[class_id] if i != target]
            picks = rng.choice(len(others), size=shot, replace=False)
            references.append(tuple(others[j] for j in picks))
        episodes.append(SemanticEpisode(target, chosen, tuple(references)))
    return episodes
