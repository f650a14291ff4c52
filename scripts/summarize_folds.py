"""Per-fold + mean table (the paper's layout) from eval.json files of vrpsam-eval.

python scripts/summarize_folds.py outputs/pascal5i_resnet50/fold*/eval/eval.json --out table.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="eval.json files")
    parser.add_argument("--out", type=Path, help="write the table here (also printed)")
    args = parser.parse_args()
    table = fold_table([json.loads(f.read_text()) for f in args.files])
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
