"""The benchmark's arithmetic, and (slow) its quick mode end to end."""

import json
import subprocess
import sys

import pytest

from vrpsam.bench.goals import CACHED_VS_UNCACHED_GOAL, GOALS, goal_verdicts
from vrpsam.bench.measure import episodes_per_second
from vrpsam.bench.run import table


def test_episodes_per_second_skips_the_warm_up_steps():
    times = [0.0, 10.0, 11.0, 12.0, 13.0]  # step ends: the first step paid a one-time cost
    assert episodes_per_second(times, warmup=1, batch=2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="more than"):
        episodes_per_second(times[:2], warmup=1)


def figures(**changed) -> dict:
    """A benchmark result with every figure the table prints (values of a quick run)."""
    result = {"floor_episodes_per_s": 2.0, "train_episodes_per_s": 1.8, "train_vs_floor": 0.9,
              "uncached_episodes_per_s": 0.9, "cached_vs_uncached": 2.0,
              "fast_pseudo_mask": {"train_episodes_per_s": 2.5, "train_vs_floor": 0.9},
              "predictor_reuse_speedup": 3.0, "predictor_reuse_ideal": 3.2,
              "eval_1000_seconds": 150.0, "eval_1000_seconds_resnet50_estimated": 900.0,
              "peak_rss_mb_cached": 900.0, "peak_rss_mb_uncached": 1500.0}  # fmt: skip
    return {**result, **changed}


def test_the_printed_figures_say_whether_their_goals_are_met():
    assert CACHED_VS_UNCACHED_GOAL.bound == 3.0  # the goal, a named constant
    printed = table(figures(cached_vs_uncached=2.0))
    assert "| 2.0× (goal ≥ 3×: not met) |" in printed
    assert "| 0.90 (goal ≥ 0.8: met) |" in printed  # training loop / floor
    assert "| 150.0 (goal ≤ 120 s: not met) |" in printed  # an upper bound
    assert "| 3.5× (goal ≥ 3×: met) |" in table(figures(cached_vs_uncached=3.5))
    verdicts = goal_verdicts(figures(cached_vs_uncached=2.0))
    assert set(verdicts) == set(GOALS)
    assert verdicts["cached_vs_uncached"] == {"value": 2.0, "goal": "≥ 3×", "met": False}


@pytest.mark.slow
def test_quick_benchmark_writes_every_key(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "-m", "vrpsam.cli.bench", "--quick", "--out", str(out)],
                   check=True)  # fmt: skip
    result = json.loads(out.read_text())
    for key in ("train_vs_floor", "cached_vs_uncached", "train_episodes_per_s",
                "predictor_reuse_speedup", "predictor_reuse_ideal", "eval_1000_seconds",
                "peak_rss_mb_cached", "peak_rss_mb_uncached"):  # fmt: skip
        assert result[key] > 0
    assert result["machine"]["threads"] >= 1
    assert set(result["goals"]) == set(GOALS)  # reported, never asserted: speed is the machine's
