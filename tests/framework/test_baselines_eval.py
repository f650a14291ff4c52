"""Every method through vrpsam-eval on the same fixed episodes, as acceptance runs it."""

import json

import pytest

from vrpsam.eval import METHODS, evaluate


@pytest.fixture(scope="module")
def method_runs(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("methods")
    runs = {}
    for method in METHODS:
        cfg = compose_cfg(
            "eval", out, f"method={method}", "eval.episodes=4", "eval.overlays=2",
            "baselines.persam_f.iterations=50", run=method,
        )  # fmt: skip
        runs[method] = (evaluate(cfg), out / method)
    return runs


def test_every_method_writes_eval_json_with_the_same_episodes(method_runs):
    assert set(method_runs) == {"vrpsam", "gpsam", "persam", "persam_f", "matcher"}
    for method, (_result, run) in method_runs.items():
        written = json.loads((run / "eval.json").read_text())
        assert written["method"] == method
        assert 0 <= written["miou"] <= 100 and written["episodes"] == 4
        assert written["seconds_per_episode"] > 0
    lists = {r["trained_on"].get("training_free", False) for r, _ in method_runs.values()}
    assert lists == {True, False}
    # All methods read the one fixed episode list of this (dataset, fold, shot, seed, n).
    episode_files = list((run.parent / "episodes").glob("*.json"))
    assert len(episode_files) == 1


def test_unknown_method_and_missing_frozen_model_are_named(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match="unknown method 'foo'"):
        evaluate(compose_cfg("eval", tmp_path, "method=foo"))
    cfg = compose_cfg("eval", tmp_path, "method=persam", "model.sam=null")
    with pytest.raises(ValueError, match=r"method=persam needs model\.sam"):
        evaluate(cfg)
