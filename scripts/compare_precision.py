"""Does bf16-mixed training give the same metrics as fp32? The demo's setting, several seeds each.

    python scripts/compare_precision.py --out outputs/precision --seeds 0 1
    python scripts/compare_precision.py --out outputs/precision --seeds 0 1 2 \
        --set epochs=1 episodes_per_epoch=320 val_episodes=40 test_episodes=200
    python scripts/compare_precision.py --out outputs/precision --setting quick   # smoke run

Uses ``make demo``'s data and stand-in weights (fitted once, reused from ``--out``), trains VRP-SAM
on fold 0 once per (precision, seed) with every run tested on one shared fixed episode list, and
writes ``precision.json`` and ``precision.md``: test mIoU / FB-IoU per run, per-precision mean and
seed spread (max - min), and the gap between the precisions' means. "Within noise" means the gap
is no larger than the spread the seed alone causes under fp32.

On a CPU, bf16 is emulated and slower than fp32; the comparison is about metrics, not speed.
The stand-ins are toys on synthetic data: these are not paper numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from vrpsam.artifacts.atomic import atomic_write_json, atomic_write_text
from vrpsam.demo.pipeline import ensure_data, ensure_standins, train_config
from vrpsam.demo.settings import SETTINGS
from vrpsam.engine.training import train

PRECISIONS = ("32-true", "bf16-mixed")


def summarize(runs: list[dict]) -> dict:
    """Per-precision mean and seed spread of test mIoU and FB-IoU, and the gap to fp32."""
    summary: dict = {}
    for precision in dict.fromkeys(r["precision"] for r in runs):
        rows = [r for r in runs if r["precision"] == precision]
        summary[precision] = {
            key: {
                "mean": statistics.fmean(r[key] for r in rows),
                "spread": max(r[key] for r in rows) - min(r[key] for r in rows),
            }
            for key in ("miou", "fbiou")
        }
        summary[precision]["seconds"] = statistics.fmean(r["seconds"] for r in rows)
    if {"32-true", "bf16-mixed"} <= summary.keys():
        summary["gap_bf16_minus_fp32"] = {
            key: summary["bf16-mixed"][key]["mean"] - summary["32-true"][key]["mean"]
            for key in ("miou", "fbiou")
        }
    return summary


def markdown(runs: list[dict], summary: dict, test_episodes: int) -> str:
    lines = [
        f"Test on {test_episodes} fixed fold-0 episodes (stand-ins on synthetic data).",
        "",
        "| precision | seed | mIoU | FB-IoU | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['precision']} | {r['seed']} | {r['miou']:.1f} | {r['fbiou']:.1f} | "
                     f"{r['seconds']:.0f} |")  # fmt: skip
    lines += ["", "| precision | mean mIoU | seed spread | mean FB-IoU | seed spread |",
              "|---|---|---|---|---|"]  # fmt: skip
    for precision in PRECISIONS:
        if precision in summary:
            s = summary[precision]
            lines.append(
                f"| {precision} | {s['miou']['mean']:.1f} | {s['miou']['spread']:.1f} | "
                f"{s['fbiou']['mean']:.1f} | {s['fbiou']['spread']:.1f} |"
            )
    if "gap_bf16_minus_fp32" in summary:
        gap = summary["gap_bf16_minus_fp32"]
        lines += ["", f"bf16 - fp32: mIoU {gap['miou']:+.2f}, FB-IoU {gap['fbiou']:+.2f}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (stand-ins reused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="full")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=N",
        help="override the setting's sizes, e.g. epochs=1 test_episodes=200",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = dict(SETTINGS[args.setting])
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in settings or not value.isdigit():
            parser.error(f"--set {item}: expected KEY=N with KEY one of {', '.join(settings)}")
        settings[key] = int(value)
    out = args.out.resolve()
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f}s] {message}", flush=True)

    data_root, data_key = ensure_data(out, settings, log)
    sam_file, backbone_file = ensure_standins(out, data_root, data_key, settings, log)
    # One list for every run: the seed then changes training only, not what is tested.
    episodes = out / "episodes" / f"fold0_test_n{settings['test_episodes']}.json"

    runs = []
    for precision in args.precisions:
        for seed in args.seeds:
            name = f"{precision}_seed{seed}"
            cfg = train_config(
                out / name, data_root, sam_file, backbone_file, settings,
                extra_overrides=(f"trainer.precision={precision}", f"seed={seed}",
                                 f"data.test_episode_list={episodes}",
                                 "test_before_training=false", "test_after_training=true"),
            )  # fmt: skip
            began = time.perf_counter()
            metrics, _ = train(cfg)
            seconds = time.perf_counter() - began
            test = metrics["test"]
            runs.append({"precision": precision, "seed": seed, "miou": test["miou"],
                         "fbiou": test["fbiou"], "seconds": seconds})  # fmt: skip
            print(f"{name}: mIoU {test['miou']:.1f}, FB-IoU {test['fbiou']:.1f}", flush=True)

    summary = summarize(runs)
    report = {"setting": args.setting, "settings": settings, "runs": runs, "summary": summary}
    atomic_write_json(out / "precision.json", report, indent=2)
    table = markdown(runs, summary, settings["test_episodes"])
    atomic_write_text(out / "precision.md", table)
    print(table)


if __name__ == "__main__":
    main()
