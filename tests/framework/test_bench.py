"""The benchmark's arithmetic, and (slow) its quick mode end to end."""

import json
import subprocess
import sys

import pytest

from vrpsam.bench.measure import episodes_per_second


def test_episodes_per_second_skips_the_warm_up_steps():
    times = [0.0, 10.0, 11.0, 12.0, 13.0]  # step ends: the first step paid a one-time cost
    assert episodes_per_second(times, warmup=1, batch=2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="more than"):
        episodes_per_second(times[:2], warmup=1)


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
