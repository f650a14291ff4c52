"""Negative episodes through the entry points: training with data.negative_share and the
false-positive test of vrpsam-eval (eval.negatives=true)."""

from __future__ import annotations

import json

from vrpsam.cli.eval import headline
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.training import train


def test_eval_negatives_reports_false_positives_on_targets_without_the_class(make_cfg, tmp_path):
    cfg = make_cfg("eval", "method=gpsam", "eval.episodes=6", "eval.negatives=true",
                   "eval.overlays=0")  # fmt: skip
    result = evaluate(cfg)
    written = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert written["negatives"] is True and result["episodes"] == 6
    assert 0 <= written["negative_fp_rate"] <= 100 and 0 <= written["negative_area"] <= 100
    # GP-SAM always prompts SAM with points: it answers on every negative episode.
    assert written["negative_fp_rate"] == 100
    assert headline(result).endswith("false positives 100.00")
    plain = evaluate(make_cfg("eval", "method=gpsam", "eval.episodes=6", run="plain"))
    assert "negative_fp_rate" not in plain and plain["negatives"] is False


def test_training_with_negative_episodes_runs(make_cfg):
    one_step = ["data.train_episodes_per_epoch=8", "test_before_training=false",
                "test_after_training=false"]  # fmt: skip
    metrics, _ = train(make_cfg("train", "data.negative_share=0.5", *one_step))
    assert metrics["steps"] == 1 and metrics["val_history"]
