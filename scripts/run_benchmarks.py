"""Run every method on several benchmarks through vrpsam-eval and write one table (method ×
benchmark, mean over folds, with seconds per episode, or per frame for video).

    python scripts/run_benchmarks.py --out bench_all --methods gpsam persam persam_f matcher \
        --data fss1000=/data/FSS-1000 lvis92i=/data/LVIS davis2017=/data/DAVIS \
        -- model/sam=vit_h model.sam_checkpoint=weights/sam_vit_h_4b8939.pth
    # VRP-SAM: a checkpoint per benchmark and fold (templates with {dataset} and {fold})
    python scripts/run_benchmarks.py --out bench_all --methods vrpsam \
        --vrpsam-ckpt 'runs/{dataset}_fold{fold}/checkpoints/best.ckpt' --data ... -- ...
    # only tabulate eval.json files made before:
    python scripts/run_benchmarks.py --out bench_all --collect bench_all/*/*/*/eval.json

Folds: every fold of each benchmark unless --folds lists some (LVIS-92i has 10, FSS-1000 and DAVIS
one). Writes OUT/<method>/<dataset>/fold<k>/eval.json and OUT/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval_runs import run_eval

from vrpsam.data.folds import FOLD_COUNTS
from vrpsam.reports.comparison import benchmark_table


def _data(pairs: list[str]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        name, sep, root = pair.partition("=")
        if not sep or name not in FOLD_COUNTS:
            raise SystemExit(f"--data takes NAME=ROOT with NAME one of {', '.join(FOLD_COUNTS)}")
        data[name] = root
    return data


CONFIG_OF = {"pascal": "pascal5i", "coco": "coco20i"}
"""Dataset name → data config name where they differ."""


def evaluate(args, method: str, dataset: str, root: str, fold: int) -> Path:
    overrides = [f"method={method}", f"data={CONFIG_OF.get(dataset, dataset)}", f"data.root={root}",
                 f"data.fold={fold}", *args.overrides]  # fmt: skip
    if method == "vrpsam" and args.vrpsam_ckpt:
        overrides.append(f"ckpt_path={args.vrpsam_ckpt.format(dataset=dataset, fold=fold)}")
    return run_eval(args.out / method / dataset / f"fold{fold}", overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--methods", nargs="+", default=["gpsam", "persam", "persam_f", "matcher"])
    parser.add_argument("--data", nargs="+", default=[], help="NAME=ROOT per benchmark")
    parser.add_argument("--folds", nargs="+", type=int, help="folds to run (default: all)")
    parser.add_argument("--vrpsam-ckpt", help="checkpoint template with {dataset} and {fold}")
    parser.add_argument("--collect", nargs="+", type=Path, help="existing eval.json files")
    parser.add_argument("overrides", nargs="*", help="vrpsam-eval overrides (after --)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.collect:
        files = args.collect
    else:
        data = _data(args.data)
        if not data:
            raise SystemExit("give --data NAME=ROOT for at least one benchmark, or --collect")
        files = [
            evaluate(args, method, dataset, root, fold)
            for method in args.methods
            for dataset, root in data.items()
            for fold in (args.folds or range(FOLD_COUNTS[dataset]))
        ]
    table = benchmark_table([json.loads(Path(f).read_text()) for f in files])
    (args.out / "benchmarks.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
