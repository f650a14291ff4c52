"""Run several methods on the same fixed episodes and compare them: a markdown table and a bar
chart over methods × label types × folds.

    # evaluate, then compare (extra arguments after -- go to every vrpsam-eval call):
    python scripts/compare_methods.py --out comparison --methods gpsam persam persam_f matcher \
        --annotations mask box --folds 0 1 2 3 -- experiment=coco20i_resnet50 data.root=DATA \
        model.sam_checkpoint=sam_vit_h_4b8939.pth
    # VRP-SAM needs a trained model per fold: a template with {fold}
    python scripts/compare_methods.py --out comparison --methods vrpsam \
        --vrpsam-ckpt 'runs/fold{fold}/checkpoints/best.ckpt' ... -- ...
    # only compare existing eval.json files:
    python scripts/compare_methods.py --out comparison --collect runs/*/eval.json

Writes OUT/comparison.md and OUT/comparison.png (and OUT/<method>/<label>/fold<k>/eval.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval_runs import run_eval

from vrpsam.reports.comparison import comparison_chart, comparison_table


def evaluate(args, method: str, annotation: str, fold: int) -> Path:
    overrides = [f"method={method}", f"data.fold={fold}", f"eval.annotation={annotation}",
                 *args.overrides]  # fmt: skip
    if method == "vrpsam" and args.vrpsam_ckpt:
        overrides.append(f"ckpt_path={args.vrpsam_ckpt.format(fold=fold)}")
    return run_eval(args.out / method / annotation / f"fold{fold}", overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--methods", nargs="+", default=["gpsam", "persam", "persam_f", "matcher"])
    parser.add_argument("--annotations", nargs="+", default=["mask"])
    parser.add_argument("--folds", nargs="+", type=int, default=[0])
    parser.add_argument("--vrpsam-ckpt", help="checkpoint path template with {fold}")
    parser.add_argument("--collect", nargs="+", type=Path, help="existing eval.json files")
    parser.add_argument("overrides", nargs="*", help="vrpsam-eval overrides (after --)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.collect:
        files = args.collect
    else:
        files = [evaluate(args, m, a, f) for m in args.methods for a in args.annotations
                 for f in args.folds]  # fmt: skip
    results = [json.loads(Path(f).read_text()) for f in files]
    table = comparison_table(results)
    (args.out / "comparison.md").write_text(table)
    comparison_chart(results, args.out / "comparison.png")
    print(table)
    print(f"wrote {args.out / 'comparison.md'} and {args.out / 'comparison.png'}")


if __name__ == "__main__":
    main()
