"""Class splits of the few-shot benchmarks, and the held-out validation images.

Class ids are 1-indexed as each dataset numbers them:

* ``pascal``: VOC ids 1..20. Fold ``f`` tests classes ``5f+1 .. 5f+5`` (PASCAL-5i).
* ``coco``: class *index* 1..80, the position of the category in the sorted list of the real COCO
  2014 category ids (1..90 with gaps). Fold ``f`` tests ``{f+1, f+5, f+9, ...}`` (COCO-20i,
  interleaved).
* ``coco2pascal`` (VRP-SAM Table 10): train on COCO-20i fold ``f`` with every COCO class that maps
  to a PASCAL test class of fold ``f`` removed from the base classes; test on PASCAL VOC with the
  re-partitioned folds below. Its *base* classes are COCO class indices, its *novel* classes are
  VOC ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

DATASETS = ("pascal", "coco", "coco2pascal")
NUM_FOLDS = 4
"""Folds of the PASCAL-5i / COCO-20i family (the datasets whose classes this module numbers)."""

FOLD_COUNTS = {
    "pascal": NUM_FOLDS,
    "coco": NUM_FOLDS,
    "coco2pascal": NUM_FOLDS,
    "fss1000": 1,  # one fixed class split (hsnet's)
    "lvis92i": 10,  # Matcher: fold f = every tenth class from f
    "davis2017": 1,
    "davis2016": 1,
}
"""Number of folds of every dataset a run may name (``data.dataset``)."""

PASCAL_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
"""VOC class names; ``PASCAL_CLASSES[i - 1]`` is VOC id ``i``."""

COCO_CATEGORIES = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"),
    (38, "kite"), (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"),
    (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"),
    (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"),
    (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"),
    (75, "remote"), (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"),
    (80, "toaster"), (81, "sink"), (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"),
    (87, "scissors"), (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
)  # fmt: skip
"""(COCO category id, name) of the 80 COCO 2014 categories by id; class index = position + 1."""

COCO_TO_VOC = {
    "airplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat",
    "bottle": "bottle", "bus": "bus", "car": "car", "cat": "cat", "chair": "chair", "cow": "cow",
    "dining table": "diningtable", "dog": "dog", "horse": "horse", "motorcycle": "motorbike",
    "person": "person", "potted plant": "pottedplant", "sheep": "sheep", "couch": "sofa",
    "train": "train", "tv": "tvmonitor",
}  # fmt: skip
"""COCO category name → VOC class name for the 20 COCO classes that PASCAL VOC also has."""

COCO2PASCAL_TEST_FOLDS = {
    0: ("aeroplane", "boat", "chair", "diningtable", "dog", "person"),
    1: ("horse", "sofa", "bicycle", "bus"),
    2: ("bird", "car", "pottedplant", "sheep", "train", "tvmonitor"),
    3: ("bottle", "cow", "cat", "motorbike"),
}
"""PASCAL test classes of each COCO→PASCAL fold (VRP-SAM Table 10, after HSNet/PFENet)."""


def check_fold(fold: int, dataset: str = "pascal") -> int:
    """Return ``fold`` if ``dataset`` has such a fold (0..3 for PASCAL-5i and COCO-20i, 0..9 for
    LVIS-92i, 0 for FSS-1000 and DAVIS), else raise ``ValueError``."""
    if dataset not in FOLD_COUNTS:
        raise ValueError(f"dataset must be one of {', '.join(FOLD_COUNTS)}, got {dataset!r}")
    count = FOLD_COUNTS[dataset]
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < count:
        allowed = "0" if count == 1 else f"0..{count - 1}"
        raise ValueError(f"fold must be {allowed}, got {fold} ({dataset} has {count} fold(s))")
    return fold


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return dataset


def pascal_id(name: str) -> int:
    """VOC id (1..20) of a VOC class name."""
    try:
        return PASCAL_CLASSES.index(name) + 1
    except ValueError:
        raise ValueError(f"unknown PASCAL VOC class {name!r}") from None


def coco_index(name: str) -> int:
    """COCO-20i class index (1..80) of a COCO category name."""
    for index, (_, coco_name) in enumerate(COCO_CATEGORIES, start=1):
        if coco_name == name:
            return index
    raise ValueError(f"unknown COCO category {name!r}")


def all_classes(dataset: str) -> tuple[int, ...]:
    """All class ids: 1..20 for ``pascal``, 1..80 for ``coco`` and ``coco2pascal`` (COCO-based)."""
    n = len(PASCAL_CLASSES) if _check_dataset(dataset) == "pascal" else len(COCO_CATEGORIES)
    return tuple(range(1, n + 1))


def novel_classes(dataset: str, fold: int) -> tuple[int, ...]:
    """Test classes of ``fold``.

    Returns:
        Sorted class ids: VOC ids for ``pascal`` and ``coco2pascal``, COCO class indices for
        ``coco``.
    """
    check_fold(fold)
    if _check_dataset(dataset) == "pascal":
        return tuple(range(5 * fold + 1, 5 * fold + 6))
    if dataset == "coco":
        return tuple(range(fold + 1, len(COCO_CATEGORIES) + 1, NUM_FOLDS))
    return tuple(sorted(pascal_id(name) for name in COCO2PASCAL_TEST_FOLDS[fold]))


def base_classes(dataset: str, fold: int) -> tuple[int, ...]:
    """Training classes of ``fold``.

    For ``coco2pascal`` these are COCO class indices: COCO-20i fold ``fold``'s base classes minus
    every COCO class that maps to one of the fold's PASCAL test classes, so no test class is seen
    in training.
    """
    if _check_dataset(dataset) == "pascal":
        novel = set(novel_classes("pascal", fold))
        return tuple(c for c in all_classes("pascal") if c not in novel)
    novel = set(novel_classes("coco", fold))
    if dataset == "coco2pascal":
        test_names = set(COCO2PASCAL_TEST_FOLDS[fold])
        novel |= {coco_index(c) for c, v in COCO_TO_VOC.items() if v in test_names}
    return tuple(c for c in all_classes("coco") if c not in novel)


def class_name(dataset: str, class_id: int) -> str:
    """Name of ``class_id``: VOC names for ``pascal``, COCO names for ``coco`` and ``coco2pascal``
    (whose test sources name their VOC ids through ``class_name("pascal", ...)``)."""
    names = (
        PASCAL_CLASSES if _check_dataset(dataset) == "pascal" else [n for _, n in COCO_CATEGORIES]
    )
    if not 1 <= class_id <= len(names):
        raise ValueError(f"class id must be 1..{len(names)} for {dataset}, got {class_id}")
    return names[class_id - 1]


def _unit_hash(image_id: str, seed: int) -> float:
    """A number in [0, 1) for ``image_id``; unlike ``hash()`` it is the same in every process."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def holdout_images(
    images_by_class: Mapping[int, Sequence[str]],
    *,
    fraction: float = 0.1,
    seed: int = 0,
    min_per_class: int = 2,
) -> frozenset[str]:
    """Pick the base-class training images held out for model selection (the ``val`` split).

    The rule, in two steps:

    1. an image is held out when a seeded hash of its id falls below ``fraction`` (~10% by
       default), so the choice does not depend on file-system order and an image stays where it
       is when the list grows;
    2. a modest top-up for small trees: a class of ``n`` images that got fewer than
       ``min(min_per_class, n // 5)`` held-out images by the hash gets its lowest-hash images added
       until it has that many. With the default ``min_per_class=2`` a class of 10 or more images
       gets at least 2 (a 1-shot episode needs a reference and a target), and the top-up never
       takes more than a fifth of a class. On the real datasets classes hold hundreds of images and
       the hash alone gives them far more, so the top-up does not fire there; on a 200-image
       synthetic VOC tree it raises the held-out share from ~10% to ~13%.

    ``fraction == 0`` holds out nothing, top-up included: the official protocol trains on every
    training image and selects on the test classes.

    Args:
        images_by_class: class id → ids of the training images that hold the class.
        fraction: share of images held out by the hash rule, in [0, 1).
        seed: seed of the hash.
        min_per_class: held-out images the top-up gives each class (never more than a fifth of the
            class's images); 0 turns the top-up off.

    Returns:
        The held-out image ids.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return frozenset()
    all_ids: set[str] = set().union(*images_by_class.values()) if images_by_class else set()
    score = {image_id: _unit_hash(image_id, seed) for image_id in all_ids}
    held = {image_id for image_id, s in score.items() if s < fraction}
    for class_id in sorted(images_by_class):
        ids = sorted(set(images_by_class[class_id]), key=lambda i: (score[i], i))
        # A fifth at most: the top-up must not empty a small class's training list.
        want = min(min_per_class, len(ids) // 5)
        have = sum(i in held for i in ids)
        for image_id in ids:
            if have >= want:
                break
            if image_id not in held:
                held.add(image_id)
                have += 1
    return frozenset(held)


def split_train_val(
    images_by_class: Mapping[int, Iterable[str]],
    split: str,
    *,
    fraction: float = 0.1,
    seed: int = 0,
    min_per_class: int = 2,
) -> dict[int, list[str]]:
    """Restrict base-class image lists to the ``train`` or ``val`` split (see holdout_images).

    With ``fraction == 0`` the ``train`` split keeps every image and ``val`` is empty.
    """
    lists = {c: sorted(set(ids)) for c, ids in images_by_class.items()}
    held = holdout_images(lists, fraction=fraction, seed=seed, min_per_class=min_per_class)
    keep = (lambda i: i in held) if split == "val" else (lambda i: i not in held)
    return {c: [i for i in ids if keep(i)] for c, ids in sorted(lists.items())}
