"""Check an LVIS-92i tree (COCO 2017 images + raw LVIS v1 jsons): ``vrpsam-data verify --dataset
lvis92i``.

Both jsons must exist and every image they name (resolved from ``coco_url``) must be on disk;
images are decoded (a sample unless ``full``) and checked against the json's size. Then the ten
folds' splits are built through the real reader (1-shot fold lists) and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vrpsam.data.lvis import NUM_FOLDS, LvisSource, load_lvis_index
from vrpsam.data.verify import (
    READ_ERRORS,
    VerifyReport,
    check_indexed_images,
    report_missing,
    summarise,
)


def verify_lvis92i(
    root: str | Path,
    *,
    full: bool = False,
    sample: int = 3000,
    cache_dir: str | Path | None = None,
    min_pixels: int | None = None,
    **options: Any,
) -> VerifyReport:
    """Check an LVIS-92i tree (see :class:`~vrpsam.data.lvis.LvisSource`).

    Args:
        root: the folder of ``train2017``, ``val2017`` and ``annotations``.
        full: decode every image.
        sample: decode at most this many images per json unless ``full``.
        cache_dir: where to cache the index when ``annotations`` is read-only.
        min_pixels: the reader's ``min_area`` (default 1: any size, as Matcher).
        **options: more :class:`LvisSource` options.
    """
    root = Path(root).expanduser()
    report = VerifyReport(dataset="lvis92i", root=root)
    if report_missing(report, root, "LVIS root"):
        return report
    indexes = {}
    for which in ("train", "val"):
        json_path = root / "annotations" / f"lvis_v1_{which}.json"
        if report_missing(report, json_path, "annotation file"):
            continue
        try:
            indexes[which] = load_lvis_index(root, which, cache_dir)
        except READ_ERRORS as error:
            report.problems.append(f"{json_path}: {error}")
            continue
        check_indexed_images(report, indexes[which], root, json_path, sample=sample, full=full)
    if report.problems:
        report.notes.append("fold table skipped until the problems below are fixed")
        return report
    options = dict(options)
    if min_pixels is not None:
        options["min_area"] = min_pixels
    report.notes.append(
        f"fold lists for 1-shot: classes in more than 1 val image, every tenth from the fold; "
        f"min_area={options.get('min_area', 1)}"
    )

    def build(fold: int, split: str) -> LvisSource:
        return LvisSource(root=root, fold=fold, split=split, indexes=indexes, **options)

    summarise(report, build, folds=NUM_FOLDS)
    return report
