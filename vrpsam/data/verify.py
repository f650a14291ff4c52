"""Check a PASCAL VOC/SBD or COCO 2014 tree before training, and summarise its folds.

``vrpsam-data verify`` runs these: every listed file must exist; images and masks are decoded (all
of them on trees of up to ``sample`` images per list, else an evenly spaced sample; ``full=True``
decodes all); masks may hold only 0..20 and 255; COCO jsons must match their image folders. Then
each fold's splits are built through the real readers and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vrpsam.data.base import SPLITS
from vrpsam.data.coco import CocoSource
from vrpsam.data.coco_index import load_index
from vrpsam.data.fileio import DatasetError, read_id_list, read_label_png, read_rgb
from vrpsam.data.folds import NUM_FOLDS, PASCAL_CLASSES
from vrpsam.data.pascal import PascalSource, check_label_values

_ERRORS = (OSError, DatasetError, ValueError, KeyError)


@dataclass
class VerifyReport:
    """What :func:`verify_tree` found.

    Attributes:
        dataset: ``"pascal"`` or ``"coco"``.
        root: the tree checked.
        problems: one sentence per problem; the tree is sound when empty.
        notes: facts worth knowing that are not problems (sampling, list mode, thin classes).
        rows: ``(fold, split, images, classes, min images per class, max images per class)``.
    """

    dataset: str
    root: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: list[tuple[int, str, int, int, int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def format(self) -> str:
        """A human-readable report: the fold table, notes and problems."""
        lines = [f"{self.dataset} tree at {self.root}"]
        if self.rows:
            head = ("fold", "split", "images", "classes", "min/class", "max/class")
            lines.append("  ".join(f"{h:>9}" for h in head))
            lines += ["  ".join(f"{v:>9}" for v in row) for row in self.rows]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


def _sample(items: Sequence[str], limit: int, full: bool) -> list[str]:
    """All items, or ``limit`` evenly spaced ones (deterministic)."""
    if full or len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _missing(report: VerifyReport, path: Path, what: str) -> bool:
    if path.exists():
        return False
    report.problems.append(f"{what} not found: {path}")
    return True


def _summarise(report: VerifyReport, build: Callable[[int, str], Any]) -> None:
    """Build every fold/split through the real readers and add a table row for each."""
    for fold in range(NUM_FOLDS):
        for split in SPLITS:
            try:
                source = build(fold, split)
            except _ERRORS as error:
                report.problems.append(f"fold {fold} {split}: {error}")
                continue
            sizes = {c: len(ids) for c, ids in source.image_ids_by_class().items()}
            images = len(set().union(*source.image_ids_by_class().values()))
            row = (fold, split, images, len(sizes), min(sizes.values()), max(sizes.values()))
            report.rows.append(row)
            few = sorted(c for c, n in sizes.items() if n < 2)
            if few:
                shown = ", ".join(map(str, few[:10])) + (", ..." if len(few) > 10 else "")
                report.problems.append(
                    f"fold {fold} {split}: {len(few)} classes ({shown}) have fewer than 2 images, "
                    "too few for a 1-shot episode (reference + target); small images may need a "
                    "lower size threshold (--min-pixels)"
                )
            thin = sorted(c for c, n in sizes.items() if 2 <= n < 6)
            if thin:
                report.notes.append(
                    f"fold {fold} {split}: {len(thin)} classes have < 6 images (too few for 5-shot)"
                )


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
    if _missing(report, root, "PASCAL VOC root"):
        return report
    lists = root / "ImageSets" / "Segmentation"
    paths = [
        root / "JPEGImages",
        root / "SegmentationClassAug",
        lists / "train.txt",
        lists / "val.txt",
    ]
    if any([_missing(report, p, "required file or folder") for p in paths]):
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
    checked = _sample([i for i in ids if i in jpegs and i in pngs], sample, full)
    if len(checked) < len(ids):
        report.notes.append(f"decoded {len(checked)} of {len(ids)} images (use --full for all)")
    counts: dict[str, dict[int, int]] = {}  # reused by the fold table: masks are read once
    for image_id in checked:
        mask_path = root / "SegmentationClassAug" / f"{image_id}.png"
        try:
            image = read_rgb(root / "JPEGImages" / f"{image_id}.jpg")
            label = read_label_png(mask_path)
            check_label_values(label, mask_path)
        except _ERRORS as error:
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
    options.setdefault("pixel_counts", counts)
    try:
        report.notes.append(
            f"fold lists: {PascalSource(root=root, fold=0, split='train', **options).lists}"
        )
    except _ERRORS as error:
        report.problems.append(str(error))
        return report
    _summarise(report, lambda f, s: PascalSource(root=root, fold=f, split=s, **options))
    return report


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
    if _missing(report, root, "COCO root"):
        return report
    indexes = {}
    for folder in ("train2014", "val2014"):
        json_path = root / "annotations" / f"instances_{folder}.json"
        if _missing(report, root / folder, "image folder") or _missing(
            report, json_path, "annotation file"
        ):
            continue
        try:
            indexes[folder], _ = load_index(json_path, root / folder, cache_dir=cache_dir)
        except _ERRORS as error:
            report.problems.append(f"{json_path}: {error}")
            continue
        images = indexes[folder]["images"]
        stems = _sample(sorted(images), sample, full)
        if len(stems) < len(images):
            report.notes.append(f"{folder}: decoded {len(stems)} of {len(images)} images")
        for stem in stems:
            entry = images[stem]
            try:
                image = read_rgb(root / folder / entry["file_name"])
            except _ERRORS as error:
                report.problems.append(str(error))
                continue
            if image.shape[:2] != (entry["height"], entry["width"]):
                report.problems.append(
                    f"{root / folder / entry['file_name']} is {image.shape[1]}x{image.shape[0]} "
                    "but "
                    f"{json_path.name} says {entry['width']}x{entry['height']}"
                )
    if report.problems:
        report.notes.append("fold table skipped until the problems below are fixed")
        return report

    def build(fold: int, split: str) -> CocoSource:
        index = indexes["val2014" if split == "test" else "train2014"]
        return CocoSource(root=root, fold=fold, split=split, index=index, **options)

    _summarise(report, build)
    return report


VERIFIERS: dict[str, Callable[..., VerifyReport]] = {"pascal": verify_pascal, "coco": verify_coco}


def verify_tree(dataset: str, root: str | Path, **options: Any) -> VerifyReport:
    """Run the verifier of ``dataset`` (``"pascal"`` or ``"coco"``) on ``root``."""
    if dataset not in VERIFIERS:
        raise ValueError(f"dataset must be one of {', '.join(VERIFIERS)}, got {dataset!r}")
    return VERIFIERS[dataset](root, **options)
