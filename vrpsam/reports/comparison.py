"""Methods side by side: a markdown table and a bar chart over methods × label types × folds,
from the ``eval.json`` files ``vrpsam-eval method=...`` writes (see scripts/compare_methods.py).

Every method's ``eval.json`` comes from the same fixed episode list (same dataset, fold, shot,
annotation and seed), so the numbers compare directly; runs on other episodes are refused.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

METHOD_ORDER = ("vrpsam", "gpsam", "persam", "persam_f", "matcher")
ANNOTATION_ORDER = ("point", "scribble", "box", "mask")


def _order(values, preferred) -> list:
    return sorted(set(values), key=lambda v: (preferred.index(v) if v in preferred else 99, v))


def check_comparable(results: list[dict]) -> None:
    """Refuse results of different datasets, shots or seeds: they are not the same episodes."""
    keys = {(r["dataset"], r["shot"], str(r["seeds"]), r["episodes"]) for r in results}
    if len(keys) > 1:
        raise ValueError(
            "these eval.json files were not evaluated on the same episodes (dataset, shot, seeds, "
            f"episodes differ: {sorted(keys)}); compare runs of one setting at a time"
        )


def comparison_table(results: list[dict]) -> str:
    """Rows: methods; columns: mIoU per (label type, fold) and the mean over folds; plus seconds
    per episode (mean over the method's runs)."""
    check_comparable(results)
    cells: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    seconds: dict[str, list[float]] = defaultdict(list)
    for r in results:
        cells[(r["method"], r["annotation"])][r["fold"]] = r["miou"]
        seconds[r["method"]].append(r["seconds_per_episode"])
    methods = _order((m for m, _ in cells), METHOD_ORDER)
    labels = _order((a for _, a in cells), ANNOTATION_ORDER)
    folds = sorted({f for per_fold in cells.values() for f in per_fold})
    header = ["method"]
    for label in labels:
        header += [f"{label} f{f}" for f in folds] + [f"{label} mean"]
    header.append("s/episode")
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for method in methods:
        row = [method]
        for label in labels:
            per_fold = cells.get((method, label), {})
            row += [f"{per_fold[f]:.1f}" if f in per_fold else "—" for f in folds]
            row.append(f"{statistics.fmean(per_fold.values()):.1f}" if per_fold else "—")
        row.append(f"{statistics.fmean(seconds[method]):.3f}")
        lines.append("| " + " | ".join(row) + " |")
    first = results[0]
    note = (
        f"\nmIoU (%) on {first['dataset']}, {first['shot']}-shot, {first['episodes']} episodes "
        f"per fold, seeds {first['seeds']}; the same episode list for every method.\n"
    )
    return "\n".join(lines) + "\n" + note


def comparison_chart(results: list[dict], path: str | Path) -> None:
    """Grouped bars: label types on the x axis, one bar per method (mean mIoU over folds, with
    the folds' min–max as the error bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_comparable(results)
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in results:
        values[(r["method"], r["annotation"])].append(r["miou"])
    methods = _order((m for m, _ in values), METHOD_ORDER)
    labels = _order((a for _, a in values), ANNOTATION_ORDER)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(labels) * max(1, len(methods) / 3), 3.6))
    for i, method in enumerate(methods):
        xs, means, low, high = [], [], [], []
        for j, label in enumerate(labels):
            v = values.get((method, label))
            if not v:
                continue
            mean = statistics.fmean(v)
            xs.append(j + (i - (len(methods) - 1) / 2) * width)
            means.append(mean)
            low.append(mean - min(v))
            high.append(max(v) - mean)
        ax.bar(xs, means, width, yerr=[low, high], capsize=2, label=method)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("mIoU (%)")
    ax.set_title("Methods on the same episodes (mean over folds; bars: fold range)")
    ax.legend(fontsize=8, ncol=min(len(methods), 5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _headline(result: dict) -> tuple[float, float, str]:
    """(score, seconds per unit, unit) of one eval.json: mIoU per episode for image benchmarks,
    J&F per frame for video."""
    if "jf_mean" in result:
        return result["jf_mean"], result.get("seconds_per_frame", float("nan")), "frame"
    return result["miou"], result["seconds_per_episode"], "episode"


def benchmark_table(results: list[dict]) -> str:
    """Rows: methods; columns: one per benchmark (dataset, mean over the folds run: mIoU, or J&F
    for video) and its seconds per episode (per frame for video). Results of one method and
    benchmark must share shot and annotation; folds are averaged."""
    cells: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    units: dict[str, str] = {}
    settings: dict[str, set] = defaultdict(set)
    for r in results:
        score, seconds, unit = _headline(r)
        cells[(r["method"], r["dataset"])].append((score, seconds))
        units[r["dataset"]] = unit
        settings[r["dataset"]].add((r.get("shot"), r.get("annotation"), r.get("split", "novel")))
    mixed = {d: sorted(map(str, s)) for d, s in settings.items() if len(s) > 1}
    if mixed:
        raise ValueError(f"runs of one benchmark differ in (shot, annotation, split): {mixed}")
    methods = _order((m for m, _ in cells), METHOD_ORDER)
    datasets = sorted(units)
    header = ["method"]
    for dataset in datasets:
        metric = "J&F" if units[dataset] == "frame" else "mIoU"
        header += [f"{dataset} {metric}", f"s/{units[dataset]}"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for method in methods:
        row = [method]
        for dataset in datasets:
            runs = cells.get((method, dataset))
            if not runs:
                row += ["—", "—"]
                continue
            row.append(f"{statistics.fmean(s for s, _ in runs):.1f}")
            row.append(f"{statistics.fmean(t for _, t in runs):.3f}")
        lines.append("| " + " | ".join(row) + " |")
    folds = {d: sorted({r.get("fold", 0) for r in results if r["dataset"] == d}) for d in datasets}
    note = (
        "\nScores in percent, mean over the folds run: "
        + "; ".join(f"{d} folds {folds[d]}" for d in datasets)
        + ". Every method of a benchmark ran the same episode list (or the same sequences).\n"
    )
    return "\n".join(lines) + "\n" + note
