"""Does training with negative episodes lower false positives without hurting the one-class
numbers? Trains the demo's VRP-SAM twice (the demo's synthetic data, stand-in weights and sizes)
with and without negatives, then tests each on the demo's fixed novel-class episodes (mIoU) and
on the same episodes with every target swapped for an image without the class (false positives).

    python scripts/bench_negatives.py --out outputs/negatives            # ~15 min on 2 CPU cores
    python scripts/bench_negatives.py --out outputs/negatives --share 0.25 --setting quick

Writes OUT/negatives.md and OUT/negatives.json. Figures come from stand-in weights on synthetic
data: they say how the switch moves the numbers, not what it does on real data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vrpsam.demo.pipeline import compose, ensure_data, ensure_standins, train_config
from vrpsam.demo.settings import SETTINGS
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.training import train


def _evaluate(out: Path, variant: Path, common: list[str], checkpoint: Path, negatives: bool,
              episodes: int) -> dict:  # fmt: skip
    name = "negatives" if negatives else "positives"
    overrides = [*common, f"paths.output_dir={out}", f"paths.run_dir={variant / name}",
                 f"ckpt_path={checkpoint}", f"eval.episodes={episodes}",
                 f"eval.negatives={str(negatives).lower()}"]  # fmt: skip
    return evaluate(compose("eval", overrides))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--share", type=float, default=0.25, help="negative share when on")
    parser.add_argument("--setting", choices=tuple(SETTINGS), default="full")
    args = parser.parse_args()
    settings = SETTINGS[args.setting]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_root, data_key = ensure_data(out, settings, print)
    sam_file, backbone_file = ensure_standins(out, data_root, data_key, settings, print)
    common = [
        "experiment=demo",
        f"data.root={data_root}",
        f"model.sam_checkpoint={sam_file}",
        f"model.backbone_checkpoint={backbone_file}",
        "trainer.enable_progress_bar=false",
    ]
    rows = []
    for share in (0.0, args.share):
        variant = out / f"negative_share_{share}"
        start = time.perf_counter()
        cfg = train_config(
            variant,
            data_root,
            sam_file,
            backbone_file,
            settings,
            (f"data.negative_share={share}", "test_before_training=false"),
        )
        train(cfg)
        minutes = (time.perf_counter() - start) / 60
        checkpoint = variant / "run" / "checkpoints" / "best.ckpt"
        episodes = settings["test_episodes"]
        positive = _evaluate(out, variant, common, checkpoint, False, episodes)
        negative = _evaluate(out, variant, common, checkpoint, True, episodes)
        rows.append({"negative_share": share, "miou": positive["miou"],
                     "fbiou": positive["fbiou"], "episodes": positive["episodes"],
                     "negative_episodes": negative["episodes"],
                     "negative_fp_rate": negative["negative_fp_rate"],
                     "negative_area": negative["negative_area"],
                     "training_minutes": minutes})  # fmt: skip
        print(f"negative_share {share}: mIoU {positive['miou']:.1f}, false positives on "
              f"{negative['negative_fp_rate']:.1f}% of negative episodes")  # fmt: skip
    lines = [
        "| negative share in training | novel mIoU | FB-IoU | negative episodes answered (FP %) "
        "| mean area predicted on negatives (%) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['negative_share']} | {r['miou']:.1f} | {r['fbiou']:.1f} | "
        f"{r['negative_fp_rate']:.1f} | {r['negative_area']:.2f} |"
        for r in rows
    ]
    note = (f"\nThe demo's setting ({args.setting}): {rows[0]['episodes']} fixed fold-0 test "
            "episodes; negatives = the same episodes with each target swapped for a test image "
            "without the class (an episode counts as answered when any pixel is predicted). "
            "Stand-in weights on synthetic data.\n")  # fmt: skip
    table = "\n".join(lines) + "\n" + note
    (out / "negatives.md").write_text(table)
    (out / "negatives.json").write_text(json.dumps(rows, indent=2))
    print(table)


if __name__ == "__main__":
    main()
