"""Run several methods on many classes at once (``task=semantic``) and compare them: one table
of mIoU, presence false-positive rate and seconds per image, plus each run's confusion matrix.

    # evaluate, then compare (extra arguments after -- go to every vrpsam-eval call):
    python scripts/compare_semantic.py --out semantic --methods vrpsam rim persam matcher_small \
        gpsam --vrpsam-ckpt runs/pascal/checkpoints/best.ckpt -- data=pascal5i data.root=DATA \
        model.sam=vit_h model.sam_checkpoint=sam_vit_h_4b8939.pth eval.episodes=null
    # two VRP-SAM checkpoints side by side: RUN=METHOD names a run, --ckpt RUN=PATH its weights
    python scripts/compare_semantic.py --out semantic --methods vrpsam vrpsam_neg=vrpsam rim \
        --vrpsam-ckpt plain/best.ckpt --ckpt vrpsam_neg=negatives/best.ckpt -- ...
    # only compare existing eval.json files:
    python scripts/compare_semantic.py --out semantic --collect runs/*/eval.json

Writes OUT/semantic.md, OUT/<run>/ (each run: eval.json, eval.md, confusion.png, overlays.png)
and OUT/confusion_<run>.png (a copy of each run's confusion matrix, next to the table).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path


def _cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def semantic_table(results: list[dict]) -> str:
    """One row per run: method, form, classes, images, mIoU, pixel accuracy, presence
    false-positive rate, how well presence scores separated the validation pairs (AUC), the
    threshold and where it was chosen, seconds per image."""
    lines = [
        "| run | method | dataset | form | classes | K | images | mIoU (%) | pixel acc. (%) "
        "| FP rate (%) | val AUC (%) | threshold | s/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["dataset"], r["form"], -r["miou"])):
        presence = r["presence"]
        form = r["form"] if r["form"] == "all" else f"{r['ways']}-way fold {r['fold']}"
        lines.append(
            f"| {r.get('run', r['method'])} | {r['method']} | {r['dataset']} | {form} | "
            f"{r['classes']} | "
            f"{r['references_per_class']} | {r['images']} | {r['miou']:.1f} | "
            f"{r['pixel_accuracy']:.1f} | {_cell(presence.get('false_positive_rate'))} | "
            f"{_cell(presence.get('val_auc'))} | "
            f"{presence['threshold']:.3f} ({presence['chosen_on']}) | "
            f"{r['seconds_per_image']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise SystemExit(f"{what} takes NAME=VALUE, got {value!r}")
        pairs[name] = rest
    return pairs


def runs(args: argparse.Namespace) -> list[tuple[str, str, str | None]]:
    """(run name, method, checkpoint or None) of each ``--methods`` entry."""
    checkpoints = _pairs(args.ckpt, "--ckpt")
    found = []
    for entry in args.methods:
        name, _, method = entry.partition("=") if "=" in entry else (entry, "", entry)
        checkpoint = checkpoints.pop(name, None)
        if checkpoint is None and method == "vrpsam":
            checkpoint = args.vrpsam_ckpt
        found.append((name, method, checkpoint))
    if checkpoints:
        raise SystemExit(f"--ckpt names runs that --methods lacks: {', '.join(checkpoints)}")
    if len({name for name, _, _ in found}) != len(found):
        raise SystemExit("two runs share a name: give one of them NAME=METHOD")
    return found


def evaluate(args: argparse.Namespace, name: str, method: str, checkpoint: str | None) -> Path:
    run_dir = args.out / name
    command = [
        str(Path(sys.executable).parent / "vrpsam-eval"),
        "task=semantic",
        f"method={method}",
        f"hydra.run.dir={run_dir}",
        *args.overrides,
    ]
    if checkpoint:
        command.append(f"ckpt_path={checkpoint}")
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return run_dir / "eval.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--methods", nargs="+", default=["vrpsam", "rim", "persam", "matcher_small", "gpsam"]
    )
    parser.add_argument("--vrpsam-ckpt", help="the VRP-SAM checkpoint (else: untrained)")
    parser.add_argument("--ckpt", nargs="+", default=[], help="RUN=PATH: a named run's weights")
    parser.add_argument("--collect", nargs="+", type=Path, help="existing eval.json files")
    parser.add_argument("overrides", nargs="*", help="vrpsam-eval overrides (after --)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = args.collect or [evaluate(args, *run) for run in runs(args)]
    results = []
    for path in map(Path, files):
        result = json.loads(path.read_text())
        if result.get("task") != "semantic":
            raise SystemExit(f"{path} is not a task=semantic evaluation")
        results.append({**result, "run": path.parent.name})
        confusion = path.parent / "confusion.png"
        target = args.out / f"confusion_{path.parent.name}.png"
        if confusion.is_file() and confusion.resolve() != target.resolve():
            shutil.copy(confusion, target)
    table = semantic_table(results)
    (args.out / "semantic.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'semantic.md'}")


if __name__ == "__main__":
    main()
