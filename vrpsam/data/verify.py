"""Check a PASCAL VOC/SBD or COCO 2014 tree before training, and summarise its folds.

``vrpsam-data verify`` runs these: every listed file must exist; images and masks are decoded (all
of them on trees of up to ``sample`` images per list, else an evenly spaced sample; ``full=True``
decodes all); masks may hold only 0..20 and 255; COCO jsons must match their image folders. Then
each fold's splits are built through the real readers and counted.

What it finds is sorted in two kinds:

* *problems* make the tree unusable as it is, and the exit status non-zero: missing, corrupt or
  unreadable files, listed ids without files, unknown label values, a COCO json that does not match
  its images, a fold split the readers cannot build;
* *notes* are facts to know about a sound tree: the list mode, the size threshold in use, the
  share of training images held out for ``val``, and thin classes. A class with fewer than 2 images
  in a fold split cannot form a 1-shot episode (reference + target) there, one with fewer than 6 no
  5-shot episode; training and evaluation skip such classes with a warning.

A synthetic tree (one with :data:`~vrpsam.data.synthetic.MARKER`) is read with the size threshold
it was made for unless one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vrpsam.data.base import SPLITS
from vrpsam.data.coco import CocoSource
from vrpsam.data.coco_index import load_index
from vrpsam.data.folds import NUM_FOLDS, PASCAL_CLASSES
from vrpsam.data.pascal import PFENET_MIN_PIXELS, PascalSource, check_label_values
from vrpsam.data.reading import DatasetError, read_id_list, read_label_png, read_rgb
from vrpsam.data.synthetic import MARKER, SHOTS_GOAL, recorded_min_pixels

READ_ERRORS = (OSError, DatasetError, ValueError, KeyError)


@dataclass
class VerifyReport:
    """What :func:`verify_tree` found.

    Attributes:
        dataset: ``"pascal"`` or ``"coco"``.
        root: the tree checked.
        problems: one sentence per problem; the tree is sound when empty.
        notes: facts worth knowing that are not problems (list mode, size threshold, sampling).
        thin: one line per fold split with classes too thin for 1-shot or 5-shot episodes (notes
            too: such classes are skipped with a warning, the tree stays usable).
        rows: ``(fold, split, images, classes, min images per class, max images per class)``.
        holdout: ``(fold, images in val, images in train + val)``: the share held out for model
            selection.
    """

    dataset: str
    root: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    thin: list[str] = field(default_factory=list)
    rows: list[tuple[int, str, int, int, int, int]] = field(default_factory=list)
    holdout: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found (notes do not count)."""
        return not self.problems

    def format(self) -> str:
        """A human-readable report: the fold table, the held-out shares, notes and problems."""
        lines = [f"{self.dataset} tree at {self.root}"]
        if self.rows:
            head = ("fold", "split", "images", "classes", "min/class", "max/class")
            lines.append("  ".join(f"{h:>9}" for h in head))
            lines += ["  ".join(f"{v:>9}" for v in row) for row in self.rows]
        if self.holdout:
            shares = ", ".join(
                f"fold {f} {held}/{total} ({held / max(total, 1):.1%})"
                for f, held, total in self.holdout
            )
            lines.append(
                f"held out for val (model selection), of each fold's training images: {shares}"
            )
        lines += [f"note: {n}" for n in self.notes]
        if self.thin:
            lines.append(
                f"note: thin classes (a 1-shot episode needs {SHOTS_GOAL[0]} images of a class, a "
                f"5-shot one {SHOTS_GOAL[1]}; training and evaluation skip a class short of that, "
                "with a warning):"
            )
            lines += [f"  {line}" for line in self.thin]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


def sample_items(items: Sequence[str], limit: int, full: bool) -> list[str]:
    """All items, or ``limit`` evenly spaced ones (deterministic)."""
    if full or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def report_missing(report: VerifyReport, path: Path, what: str) -> bool:
    if path.exists():
        return False
    report.problems.append(f"{what} not found: {path}")
    return True


def size_threshold(report: VerifyReport, options: dict[str, Any], key: str) -> None:
    """Use the threshold a synthetic tree's marker records unless ``options`` give one; note it."""
    if key not in options:
        marker = report.root / MARKER
        if marker.is_file():
            value = recorded_min_pixels(report.root)
            if value is None:
                report.notes.append(
                    f"{marker} records no size threshold (older generator): the default applies; "
                    "pass --min-pixels (400 suits 128-256 px images) or rewrite the tree"
                )
            else:
                options[key] = value
                report.notes.append(
                    f"size threshold: {key}={value}, recorded in {MARKER} (the synthetic tree was "
                    "made for it); --min-pixels overrides it"
                )
                return
        report.notes.append(f"size threshold: {key}={PFENET_MIN_PIXELS} (default, PFENet's rule)")
    else:
        report.notes.append(f"size threshold: {key}={options[key]}")


def _class_list(name: Callable[[int], str], classes: list[int], limit: int = 8) -> str:
    shown = [f"{c} {name(c)}" for c in classes[:limit]]
    return ", ".join(shown) + (f", +{len(classes) - limit} more" if len(classes) > limit else "")


def _thin_line(
    name: Callable[[int], str], fold: int, split: str, sizes: Mapping[int, int]
) -> str | None:
    """One note line for the classes of a fold split too thin for 1-shot or 5-shot episodes."""
    one, five = SHOTS_GOAL
    no_episode = sorted(c for c, n in sizes.items() if n < one)
    no_five = sorted(c for c, n in sizes.items() if one <= n < five)
    parts = []
    if no_episode:
        shown = _class_list(name, no_episode)
        parts.append(f"{len(no_episode)} with < {one} images, no episode ({shown})")
    if no_five and len(no_five) == len(sizes):
        parts.append(f"all {len(no_five)} with < {five}, no 5-shot")
    elif no_five:
        parts.append(f"{len(no_five)} with < {five}, no 5-shot ({_class_list(name, no_five)})")
    return f"fold {fold} {split}: " + "; ".join(parts) if parts else None


def summarise(
    report: VerifyReport,
    build: Callable[[int, str], Any],
    *,
    folds: int = NUM_FOLDS,
    holdout: bool = True,
) -> None:
    """Build every fold/split through the real readers; add table rows, notes and (``holdout``:
    ``val`` is a hold-out of the training images) the held-out shares."""
    for fold in range(folds):
        images: dict[str, int] = {}
        for split in SPLITS:
            try:
                source = build(fold, split)
            except READ_ERRORS as error:
                report.problems.append(f"fold {fold} {split}: {error}")
                continue
            by_class = source.image_ids_by_class()
            sizes = {c: len(ids) for c, ids in by_class.items()}
            images[split] = len(set().union(*by_class.values()))
            report.rows.append(
                (fold, split, images[split], len(sizes), min(sizes.values()), max(sizes.values()))
            )
            line = _thin_line(source.class_name, fold, split, sizes)
            if line:
                report.thin.append(line)
        if holdout and "train" in images and "val" in images:
            report.holdout.append((fold, images["val"], images["train"] + images["val"]))


def verify_pascal(
    root: str | Path, *, full: bool = False, sample: int = 3000, **options: Any
) -> VerifyReport:
    """Check a VOC2012 + SegmentationClassAug tree (see :class:`~vrpsam.data.pascal.PascalSource`).

    Args:
        root: the VOC2012 folder.
        full: decode every image and mask, however many.
        sample: decode at most this many images per list unless ``full``.
        **options: passed to :class:`~vrpsam.data.pascal.PascalSource` for the fold table.
    """
    root = Path(root).expanduser()
    report = VerifyReport(dataset="pascal", root=root)
    if report_missing(report, root, "PASCAL VOC root"):
        return report
    lists = root / "ImageSets" / "Segmentation"
    paths = [
        root / "JPEGImages",
        root / "SegmentationClassAug",
        lists / "train.txt",
        lists / "val.txt",
    ]
    if any([report_missing(report, p, "required file or folder") for p in paths]):
        return report
    ids: list[str] = []
    for name in ("train.txt", "val.txt"):
        ids += read_id_list(lists / name, "")
    ids = sorted(set(ids))
    jpegs = {p.stem for p in (root / "JPEGImages").glob("*.jpg")}
    pngs = {p.stem for p in (root / "SegmentationClassAug").glob("*.png")}
    for folder, present in (("JPEGImages", jpegs), ("SegmentationClassAug", pngs)):
        missing = [i for i in ids if i not in present]
        if missing:
            report.problems.append(
                f"{len(missing)} listed images have no file in {root / folder} "
                f"(e.g. {', '.join(missing[:5])})"
            )
    checked = sample_items([i for i in ids if i in jpegs and i in pngs], sample, full)
    if len(checked) < len(ids):
        report.notes.append(f"decoded {len(checked)} of {len(ids)} images (use --full for all)")
    counts: dict[str, dict[int, int]] = {}  # reused by the fold table: masks are read once
    for image_id in checked:
        mask_path = root / "SegmentationClassAug" / f"{image_id}.png"
        try:
            image = read_rgb(root / "JPEGImages" / f"{image_id}.jpg")
            label = read_label_png(mask_path)
            check_label_values(label, mask_path)
        except READ_ERRORS as error:
            report.problems.append(str(error))
            continue
        hist = np.bincount(label.ravel(), minlength=256)[1 : len(PASCAL_CLASSES) + 1]
        counts[image_id] = {c + 1: int(n) for c, n in enumerate(hist) if n}
        if image.shape[:2] != label.shape:
            report.problems.append(
                f"mask {mask_path} is {label.shape[1]}x{label.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
    if report.problems:
        report.notes.append("fold table skipped until the problems below are fixed")
        return report
    options = dict(options)
    size_threshold(report, options, "min_pixels")
    options.setdefault("pixel_counts", counts)
    try:
        report.notes.append(
            f"fold lists: {PascalSource(root=root, fold=0, split='train', **options).lists}"
        )
    except READ_ERRORS as error:
        report.problems.append(str(error))
        return report
    summarise(report, lambda f, s: PascalSource(root=root, fold=f, split=s, **options))
    return report


def check_indexed_images(
    report: VerifyReport, index: Mapping, image_dir: Path, json_path: Path, *, sample: int,
    full: bool,
) -> None:  # fmt: skip
    """Decode the images a COCO-format index lists (a sample unless ``full``) and check each
    against the size its json records; problems go into ``report``."""
    images = index["images"]
    stems = sample_items(sorted(images), sample, full)
    if len(stems) < len(images):
        report.notes.append(f"{json_path.name}: decoded {len(stems)} of {len(images)} images")
    for stem in stems:
        entry = images[stem]
        path = image_dir / entry["file_name"]
        try:
            image = read_rgb(path)
        except READ_ERRORS as error:
            report.problems.append(str(error))
            continue
        if image.shape[:2] != (entry["height"], entry["width"]):
            report.problems.append(
                f"{path} is {image.shape[1]}x{image.shape[0]} but {json_path.name} says "
                f"{entry['width']}x{entry['height']}"
            )


def verify_coco(
    root: str | Path,
    *,
    full: bool = False,
    sample: int = 3000,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> VerifyReport:
    """Check a COCO 2014 tree (see :class:`~vrpsam.data.coco.CocoSource`); arguments as
    :func:`verify_pascal`, ``cache_dir`` as for the index cache."""
    root = Path(root).expanduser()
    report = VerifyReport(dataset="coco", root=root)
    if report_missing(report, root, "COCO root"):
        return report
    indexes = {}
    for folder in ("train2014", "val2014"):
        json_path = root / "annotations" / f"instances_{folder}.json"
        if report_missing(report, root / folder, "image folder") or report_missing(
            report, json_path, "annotation file"
        ):
            continue
        try:
            indexes[folder], _ = load_index(json_path, root / folder, cache_dir=cache_dir)
        except READ_ERRORS as error:
            report.problems.append(f"{json_path}: {error}")
            continue
        check_indexed_images(
            report, indexes[folder], root / folder, json_path, sample=sample, full=full
        )
    if report.problems:
        report.notes.append("fold table skipped until the problems below are fixed")
        return report
    options = dict(options)
    size_threshold(report, options, "min_area")

    def build(fold: int, split: str) -> CocoSource:
        index = indexes["val2014" if split == "test" else "train2014"]
        return CocoSource(root=root, fold=fold, split=split, index=index, **options)

    summarise(report, build)
    return report


VERIFIERS = ("pascal", "coco", "fss1000", "lvis92i", "davis2017", "davis2016")
"""The datasets :func:`verify_tree` checks."""


def verify_tree(dataset: str, root: str | Path, **options: Any) -> VerifyReport:
    """Run the verifier of ``dataset`` (one of :data:`VERIFIERS`) on ``root``."""
    # The other datasets' verifiers build on this module's report and helpers: imported here.
    if dataset == "pascal":
        return verify_pascal(root, **options)
    if dataset == "coco":
        return verify_coco(root, **options)
    if dataset == "fss1000":
        from vrpsam.data.verify_fss import verify_fss1000

        return verify_fss1000(root, **options)
    if dataset == "lvis92i":
        from vrpsam.data.verify_lvis import verify_lvis92i

        return verify_lvis92i(root, **options)
    if dataset in ("davis2017", "davis2016"):
        from vrpsam.data.verify_davis import verify_davis

        return verify_davis(root, year=dataset.removeprefix("davis"), **options)
    raise ValueError(f"dataset must be one of {', '.join(VERIFIERS)}, got {dataset!r}")
