"""Check an FSS-1000 tree before training or evaluation (``vrpsam-data verify --dataset fss1000``).

Every class folder of hsnet's lists must exist (a synthetic tree: the classes its marker names),
every image its mask beside it; images and masks are decoded (all on trees of up to ``sample``
images, else an evenly spaced sample; ``full=True`` decodes all); a mask must match its image's
size and hold some foreground after the threshold at 128 (an empty mask is an empty reference).
Then the three splits are built through the real reader and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vrpsam.data.fss import MASK_THRESHOLD, ROOT_HINT, SPLIT_LISTS, FssSource, synthetic_classes
from vrpsam.data.fss_splits import fss_class_splits
from vrpsam.data.reading import read_grey_mask, read_rgb
from vrpsam.data.verify import READ_ERRORS, VerifyReport, report_missing, sample_items, summarise

_NAMED = 20
"""Problems named one by one before the rest are counted."""


def _expected_classes(root: Path, report: VerifyReport) -> list[str] | None:
    try:
        written = synthetic_classes(root)
    except READ_ERRORS as error:
        report.problems.append(str(error))
        return None
    names = sorted(n for key in SPLIT_LISTS.values() for n in fss_class_splits()[key])
    if written is not None:
        report.notes.append(
            f"synthetic tree: {len(written)} of the 1000 classes, as its marker says"
        )
        names = [n for n in names if n in written]
    return names


def _add_named(report: VerifyReport, problems: list[str]) -> None:
    report.problems.extend(problems[:_NAMED])
    if len(problems) > _NAMED:
        report.problems.append(f"... and {len(problems) - _NAMED} more of the kind above")


def verify_fss1000(
    root: str | Path, *, full: bool = False, sample: int = 3000, **options: Any
) -> VerifyReport:
    """Check an FSS-1000 tree (see :class:`~vrpsam.data.fss.FssSource`).

    Args:
        root: the folder that holds the class folders.
        full: decode every image and mask.
        sample: decode at most this many images unless ``full``.
        **options: accepted for a uniform call (FSS-1000 has no size threshold); ignored.
    """
    del options
    root = Path(root).expanduser()
    report = VerifyReport(dataset="fss1000", root=root)
    if report_missing(report, root, "FSS-1000 root"):
        return report
    names = _expected_classes(root, report)
    if names is None:
        return report
    missing = [n for n in names if not (root / n).is_dir()]
    if len(missing) == len(names):
        report.problems.append(f"no class folder of hsnet's lists under {root}: {ROOT_HINT}")
        return report
    _add_named(report, [f"class folder not found: {root / n}" for n in missing])
    pairs, unmatched = [], []
    for name in names:
        folder = root / name
        if not folder.is_dir():
            continue
        jpgs = sorted(folder.glob("*.jpg"))
        if not jpgs:
            unmatched.append(f"no image (*.jpg) in {folder}")
        for jpg in jpgs:
            png = jpg.with_suffix(".png")
            (pairs if png.is_file() else unmatched).append(
                (jpg, png) if png.is_file() else f"mask not found: {png} (for {jpg.name})"
            )
    _add_named(report, unmatched)
    checked = sample_items(pairs, sample, full)
    if len(checked) < len(pairs):
        report.notes.append(f"decoded {len(checked)} of {len(pairs)} images (use --full for all)")
    broken = []
    for jpg, png in checked:
        try:
            image = read_rgb(jpg)
            mask = read_grey_mask(png, threshold=MASK_THRESHOLD, missing_hint="", corrupt_hint="")
        except READ_ERRORS as error:
            broken.append(str(error))
            continue
        if image.shape[:2] != mask.shape:
            broken.append(
                f"mask {png} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        elif not mask.any():
            broken.append(f"mask {png} has no pixel of grey level >= {MASK_THRESHOLD}: empty")
    _add_named(report, broken)
    report.notes.append(f"masks: grey level >= {MASK_THRESHOLD} is the object (hsnet's rule)")
    if report.problems:
        report.notes.append("split table skipped until the problems below are fixed")
        return report
    summarise(
        report,
        lambda fold, split: FssSource(root=root, fold=fold, split=split),
        folds=1,
        holdout=False,
    )
    return report
