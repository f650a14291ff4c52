"""Per-fold + mean table (the paper's layout) from eval.json files of vrpsam-eval.

python scripts/summarize_folds.py outputs/pascal5i_resnet50/fold*/eval/eval.json --out table.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vrpsam.reports.tables import fold_table


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
