"""Tables for people: an evaluation's report, mean ± std cells, the per-fold table."""

from __future__ import annotations

import statistics
from collections import defaultdict


def eval_markdown(result: dict, class_names: dict | None = None) -> str:
    """The evaluation as a small markdown report: the summary line, the headline figures (with
    the false-positive figures of negative episodes) and per-class IoU."""
    negatives = "negative_fp_rate" in result
    lines = [
        f"# {result.get('method', 'vrpsam')} on {result['dataset']} fold {result['fold']}",
        "",
        *random_weights_warning(result),
        f"split: {result.get('split', 'novel')}"
        + (" (negative episodes: every target lacks the class)" if negatives else "")
        + ".",
        "",
        f"{result['shot']}-shot, {result['annotation']} references, {result['episodes']} episodes "
        f"per seed, seeds {result['seeds']}, scored at "
        f"{'original size' if result.get('score_original_size', True) else 'network size'}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| mIoU (%) | {format_mean_std(result['miou'], result.get('miou_std'))} |",
        f"| FB-IoU (%) | {format_mean_std(result['fbiou'], result.get('fbiou_std'))} |",
    ]
    if negatives:
        lines += [
            f"| false-positive rate: episodes with any predicted pixel (%) | "
            f"{result['negative_fp_rate']:.1f} |",
            f"| predicted area on negative targets (%) | {result['negative_area']:.1f} |",
        ]
    lines += ["", "| class | IoU (%) |", "|---|---|"]
    for class_id, iou in zip(result["class_ids"], result["per_class_iou"], strict=True):
        name = (class_names or {}).get(class_id, str(class_id))
        lines.append(f"| {name} | {'—' if iou is None else f'{iou:.1f}'} |")
    return "\n".join(lines) + "\n"


def random_weights_warning(result: dict) -> list[str]:
    """Report lines for a run whose frozen parts were random in place of their files (none
    otherwise): its figures mean nothing, whatever they are."""
    parts = result.get("random_frozen_weights")
    if not parts:
        return []
    return [
        f"**Random frozen weights** ({', '.join(parts)}; random_frozen_weights=true): the "
        "files the model was trained on were not used, so these figures mean nothing.",
        "",
    ]


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
