"""The benchmark (``vrpsam-bench``, ``make bench``): training, evaluation and predictor speed
against their goals.

    vrpsam-bench --out bench.json          # the full benchmark
    vrpsam-bench --quick --out bench.json  # the same definitions at CI size

Each figure comes from this one run; each measurement runs in its own process (peak memory is
that process's). Definitions:

- ``floor_episodes_per_s``: the work each episode cannot avoid, on frozen features already in
  memory: the reference's masked high stage, VRP encoder, SAM decoder forward + backward, AdamW.
- ``train_episodes_per_s``: the real training loop (``vrpsam-train``: data loading, cached
  features, step, logging), ResNet-50, batch 2, 512×512, 1-shot mask references, features from
  the disk cache; ``train_vs_floor`` = its ratio to the floor (``TRAIN_VS_FLOOR_GOAL``).
- ``uncached_episodes_per_s``: the same loop computing every frozen feature, with the vit_b
  architecture at 1024 (random weights), timed from the start of its first step (one step in
  the full mode); ``cached_vs_uncached`` = ratio (``CACHED_VS_UNCACHED_GOAL``).
- ``fast_pseudo_mask``: the same cached loop and floor with ``model.mask_before_high=false`` (the
  reference's high features unmasked and cached, the mask applied after) — a deviation from the
  paper, reported separately.
- ``predictor_reuse_speedup``: 10 targets with one reference in one call vs 10 independent calls;
  ``predictor_reuse_ideal`` = (t_ref + t_tgt)·10 / (t_ref + 10·t_tgt) from the measured
  reference-side and target-side times (``PREDICTOR_VS_IDEAL_GOAL``: the share of the ideal
  reached).
- ``eval_1000_seconds``: wall seconds of a 1000-episode evaluation of one fold, demo
  configuration, cached features (``EVAL_1000_SECONDS_GOAL``);
  ``eval_1000_seconds_resnet50_estimated`` extrapolates the main configuration from a shorter
  run (ResNet-50's masked layer4 dominates an episode on a CPU).
- ``peak_rss_mb_cached`` / ``peak_rss_mb_uncached``: peak memory of the two training loops.

The goals are the named constants of :mod:`vrpsam.bench.goals`; the printed table follows each
figure that has one with its verdict ("2.0× (goal ≥ 3×: not met)"), and ``bench.json`` records
them under ``goals``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from vrpsam.bench.goals import GOALS, goal_figures, goal_verdicts

# One process per group: the training loops run alone, so their peak memory is their own; the
# rest share processes to keep start-up costs (imports, configs) out of the wall time.
TASK_GROUPS = (
    ("cache_main", "cache_demo"),
    ("floor", "floor_fast"),
    ("train_cached",),
    ("train_uncached",),
    ("train_cached_fast", "predictor", "eval_demo", "eval_main"),
)


def run_tasks(tasks: tuple[str, ...], scale: str, work: Path, log) -> dict[str, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "vrpsam.bench.worker", ",".join(tasks), scale, str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            task, payload = line.removeprefix("BENCH-RESULT ").split(" ", 1)
            results[task] = json.loads(payload)
            log(f"{task:<18} {_short(results[task])}")
    if proc.returncode != 0 or set(results) != set(tasks):
        raise RuntimeError(f"benchmark tasks {tasks} failed:\n{proc.stderr[-4000:]}")
    log(f"  ({', '.join(tasks)}: {time.perf_counter() - start:.1f} s)")
    return results


def _short(result: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in result.items())  # fmt: skip


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def benchmark(scale_name: str, work: Path, log=print) -> dict:
    from vrpsam.bench.setups import FULL, QUICK, write_data

    scale = {"full": FULL, "quick": QUICK}[scale_name]
    write_data(work / "data", scale.images)
    write_data(work / "demo_data", 200)
    r = {}
    for group in TASK_GROUPS:
        r.update(run_tasks(group, scale_name, work, log))
    eval_demo = r["eval_demo"]
    result = {
        "mode": scale_name,
        "machine": machine(),
        "settings": {k: v for k, v in vars(scale).items()},
        "floor_episodes_per_s": r["floor"]["episodes_per_s"],
        "train_episodes_per_s": r["train_cached"]["episodes_per_s"],
        "train_vs_floor": r["train_cached"]["episodes_per_s"] / r["floor"]["episodes_per_s"],
        "uncached_episodes_per_s": r["train_uncached"]["episodes_per_s"],
        "cached_vs_uncached": r["train_cached"]["episodes_per_s"]
        / r["train_uncached"]["episodes_per_s"],
        "fast_pseudo_mask": {
            "deviation": "reference high features unmasked (cached), mask applied after",
            "floor_episodes_per_s": r["floor_fast"]["episodes_per_s"],
            "train_episodes_per_s": r["train_cached_fast"]["episodes_per_s"],
            "train_vs_floor": r["train_cached_fast"]["episodes_per_s"]
            / r["floor_fast"]["episodes_per_s"],
            "speedup_vs_paper_pseudo_mask": r["train_cached_fast"]["episodes_per_s"]
            / r["train_cached"]["episodes_per_s"],
        },
        "predictor_reuse_speedup": r["predictor"]["speedup"],
        "predictor_reuse_ideal": r["predictor"]["ideal"],
        "predictor": r["predictor"],
        "eval_1000_seconds": eval_demo["seconds"] * 1000 / eval_demo["episodes"],
        "eval_demo": eval_demo,
        "eval_1000_seconds_resnet50_estimated": r["eval_main"]["seconds_per_episode"] * 1000,
        "eval_main": r["eval_main"],
        "peak_rss_mb_cached": r["train_cached"]["peak_rss_mb"],
        "peak_rss_mb_uncached": r["train_uncached"]["peak_rss_mb"],
        "cache": {k: r[k] for k in ("cache_main", "cache_demo")},
    }
    return {**result, "goals": goal_verdicts(result)}  # each goal's figure, bound and verdict


def with_goal(result: dict, name: str, text: str) -> str:
    """A figure's printed value followed by its goal and whether it is met."""
    return f"{text} ({GOALS[name].verdict(goal_figures(result)[name])})"


def table(result: dict) -> str:
    """The figures as a markdown table, each figure that has a goal followed by its verdict."""
    p = goal_figures(result)["predictor_speedup_vs_ideal"]
    rows = [
        ("floor (episodes/s)", f"{result['floor_episodes_per_s']:.3f}"),
        ("training loop, cached (episodes/s)", f"{result['train_episodes_per_s']:.3f}"),
        ("training loop / floor",
         with_goal(result, "train_vs_floor", f"{result['train_vs_floor']:.2f}")),
        ("training loop, uncached (episodes/s)", f"{result['uncached_episodes_per_s']:.4f}"),
        ("cached / uncached",
         with_goal(result, "cached_vs_uncached", f"{result['cached_vs_uncached']:.1f}×")),
        ("fast pseudo-mask (deviation), cached (episodes/s)",
         f"{result['fast_pseudo_mask']['train_episodes_per_s']:.3f}"),
        ("fast pseudo-mask: loop / its floor",
         f"{result['fast_pseudo_mask']['train_vs_floor']:.2f}"),
        ("predictor reuse speedup (10 targets)", f"{result['predictor_reuse_speedup']:.2f}×"),
        ("predictor ideal speedup", f"{result['predictor_reuse_ideal']:.2f}×"),
        ("predictor speedup / ideal", with_goal(result, "predictor_speedup_vs_ideal", f"{p:.2f}")),
        ("1000-episode eval, demo config, cached (s)",
         with_goal(result, "eval_1000_seconds", f"{result['eval_1000_seconds']:.1f}")),
        ("1000-episode eval, main config, cached (s, estimated)",
         f"{result['eval_1000_seconds_resnet50_estimated']:.0f}"),
        ("peak RSS training, cached (MB)", f"{result['peak_rss_mb_cached']:.0f}"),
        ("peak RSS training, uncached (MB)", f"{result['peak_rss_mb_uncached']:.0f}"),
    ]  # fmt: skip
    lines = ["| figure | value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)
