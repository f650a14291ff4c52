"""Tables for people: an evaluation's report, mean ± std cells, the per-fold table."""

from __future__ import annotations

import statistics
from collections import defaultdict


def eval_markdown(result: dict, class_names: dict | None = None) -> str:
    """The evaluation as a small markdown report: the summary line and per-class IoU."""
    lines = [
        f"# {result.get('method', 'vrpsam')} on {result['dataset']} fold {result['fold']}",
        "",
        f"{result['shot']}-shot, {result['annotation']} references, {result['episodes']} episodes "
        f"per seed, seeds {result['seeds']}, scored at "
        f"{'original size' if result.get('score_original_size', True) else 'network size'}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| mIoU (%) | {format_mean_std(result['miou'], result.get('miou_std'))} |",
        f"| FB-IoU (%) | {format_mean_std(result['fbiou'], result.get('fbiou_std'))} |",
        "",
        "| class | IoU (%) |",
        "|---|---|",
    ]
    for class_id, iou in zip(result["class_ids"], result["per_class_iou"], strict=True):
        name = (class_names or {}).get(class_id, str(class_id))
        lines.append(f"| {name} | {'—' if iou is None else f'{iou:.1f}'} |")
    return "\n".join(lines) + "\n"


def format_mean_std(mean: float, std: float | None) -> str:
    return f"{mean:.1f}" if not std else f"{mean:.1f} ± {std:.1f}"


def fold_table(results: list[dict]) -> str:
    """Rows: (method, protocol, shot, annotation); columns: folds 0-3, mean mIoU, mean FB-IoU
    (percent). Results of a protocol with changed switches are marked with a ``*``."""
    rows: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for result in results:
        protocol = result.get("protocol", "?") + ("*" if result.get("protocol_changes") else "")
        key = (result.get("method", "vrpsam"), protocol, result["shot"], result["annotation"])
        rows[key][result["fold"]] = result
    lines = [
        "| method | protocol | shot | label | fold 0 | fold 1 | fold 2 | fold 3 | mean mIoU "
        "| mean FB-IoU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, protocol, shot, annotation), folds in sorted(rows.items()):
        cells = [f"{folds[f]['miou']:.1f}" if f in folds else "—" for f in range(4)]
        complete = len(folds) == 4
        mean = statistics.fmean(r["miou"] for r in folds.values())
        fb = statistics.fmean(r["fbiou"] for r in folds.values())
        mark = "" if complete else " (partial)"
        lines.append(
            f"| {method} | {protocol} | {shot} | {annotation} | "
            + " | ".join(cells)
            + f" | {mean:.1f}{mark} | {fb:.1f}{mark} |"
        )
    return "\n".join(lines) + "\n"
