"""Every method through vrpsam-eval on the same fixed episodes, as acceptance runs it."""

import json

import pytest
from hydra.errors import ConfigCompositionException

from vrpsam.engine import progress
from vrpsam.engine.evaluation import evaluate

METHODS = {"vrpsam": "vrpsam", "gpsam": "gpsam", "persam": "persam", "persam_f": "persam_f",
           "matcher_small": "matcher"}  # fmt: skip
# matcher_small on a sparser grid with fewer draws here: its episodes cost a third (the demo's
# quick test runs it at its configured size).
EXTRA = {"persam_f": ["method.iterations=50"],
         "matcher_small": ["method.settings.dense_points_per_side=8",
                           "method.settings.draws_per_size=4"]}  # fmt: skip


@pytest.fixture(scope="module")
def method_runs(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("methods")
    runs = {}
    for method in METHODS:
        cfg = compose_cfg("eval", out, f"method={method}", "eval.episodes=2", "eval.overlays=2",
                          *EXTRA.get(method, []), run=method)  # fmt: skip
        runs[method] = (evaluate(cfg), out / method)
    return runs


def test_every_method_writes_eval_json_with_the_same_episodes(method_runs):
    for option, (_result, run) in method_runs.items():
        written = json.loads((run / "eval.json").read_text())
        assert written["method"] == METHODS[option]
        assert 0 <= written["miou"] <= 100 and written["episodes"] == 2
        assert written["seconds_per_episode"] > 0
        # eval.batch_size (8) batches VRP-SAM's episodes; a training-free method runs one a step.
        assert written["batch_size"] == (8 if option == "vrpsam" else 1)
        assert (run / "seed0" / "results.json").is_file()
    lists = {r["trained_on"].get("training_free", False) for r, _ in method_runs.values()}
    assert lists == {True, False}
    settings = method_runs["persam_f"][0]["trained_on"]["settings"]
    assert settings["iterations"] == 50 and "frozen" not in settings
    # All methods read the one fixed episode list of this (dataset, fold, shot, seed, n).
    episode_files = list((run.parent / "episodes").glob("*.json"))
    assert len(episode_files) == 1


def test_a_baseline_shows_progress_episode_by_episode(compose_cfg, tmp_path, monkeypatch, capsys):
    # Batches of eval.batch_size=8 would move once for these 3 episodes: each one counts.
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)  # a line per step (the bar is off here)
    evaluate(compose_cfg("eval", tmp_path, "method=gpsam", "eval.episodes=3", "eval.overlays=0"))
    printed = capsys.readouterr().out
    for done in (1, 2, 3):
        assert f"gpsam, seed 0: {done}/3 episodes (" in printed
    assert "about" in printed.split("1/3 episodes", 1)[1].splitlines()[0]  # time left


def test_progress_is_a_named_bar_where_it_redraws_and_lines_elsewhere(monkeypatch):
    monkeypatch.setattr(progress, "_redraws", lambda: True)  # a terminal
    shown, bar = progress.pass_progress({"enable_progress_bar": True}, "matcher", "episodes")
    assert bar and isinstance(shown, progress.PassBar) and shown.test_description == "matcher"
    shown, bar = progress.pass_progress({"enable_progress_bar": False}, "matcher", "episodes")
    assert not bar and isinstance(shown, progress.PassLines)  # the demo's setting: lines
    monkeypatch.setattr(progress, "_redraws", lambda: False)  # a log file: lines, not a bar
    assert not progress.pass_progress({"enable_progress_bar": True}, "matcher", "episodes")[1]


def test_unknown_method_and_missing_frozen_model_are_named(compose_cfg, tmp_path):
    with pytest.raises(ConfigCompositionException, match="method"):
        compose_cfg("eval", tmp_path, "method=foo")
    cfg = compose_cfg("eval", tmp_path, "method=persam", "model.sam=null")
    with pytest.raises(ValueError, match=r"method=persam needs model\.sam"):
        evaluate(cfg)
