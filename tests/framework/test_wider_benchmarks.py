"""The wider benchmarks through vrpsam-eval: FSS-1000 and LVIS-92i trees written by `vrpsam-data
synthetic`, a trained demo checkpoint and baselines; the base-class test on PASCAL and COCO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vrpsam.cli.data import main as data_main
from vrpsam.engine.evaluation import evaluate

EVAL_KEYS = {"miou", "fbiou", "per_class_iou", "episodes", "split", "dataset", "fold", "shot",
             "classes_scored", "protocol", "switches", "seconds_per_episode"}  # fmt: skip


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """FSS-1000 and LVIS trees written by the CLI, as a user writes them."""
    out = tmp_path_factory.mktemp("wider")
    trees = {"fss1000": out / "fss", "lvis92i": out / "lvis"}
    assert data_main(["synthetic", "--format", "fss1000", "--out", str(trees["fss1000"]),
                      "--seed", "3"]) == 0  # fmt: skip
    assert data_main(["synthetic", "--format", "lvis", "--out", str(trees["lvis92i"]),
                      "--seed", "3"]) == 0  # fmt: skip
    return trees


@pytest.fixture
def checkpoint(demo_run) -> Path:
    """The demo checkpoint of the session's short training run (framework/conftest.py)."""
    return demo_run["ckpt"]


@pytest.mark.parametrize("dataset", ["fss1000", "lvis92i"])
def test_synthetic_trees_of_the_new_datasets_verify(trees, dataset, capsys):
    assert data_main(["verify", "--dataset", dataset, "--root", str(trees[dataset])]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")


def test_a_broken_fss_tree_is_named_file_by_file(trees, tmp_path, capsys):
    import shutil

    root = Path(shutil.copytree(trees["fss1000"], tmp_path / "fss"))
    victim = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (victim / "3.png").unlink()
    (victim / "5.jpg").write_bytes(b"not a jpeg")
    assert data_main(["verify", "--dataset", "fss1000", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"mask not found: {victim / '3.png'}" in out
    assert str(victim / "5.jpg") in out


@pytest.mark.parametrize(
    ("dataset", "method", "extra"),
    [
        ("fss1000", "vrpsam", ["eval.episodes=12"]),
        ("fss1000", "gpsam", ["eval.episodes=6"]),
        ("lvis92i", "vrpsam", ["data.fold=2", "eval.episodes=8"]),
        ("lvis92i", "persam", ["data.fold=2", "eval.episodes=4"]),
    ],
)
def test_checkpoint_and_baselines_evaluate_on_the_new_datasets(
    compose_cfg, trees, checkpoint, tmp_path, dataset, method, extra
):
    ckpt = [f"ckpt_path={checkpoint}"] if method == "vrpsam" else []
    cfg = compose_cfg("eval", tmp_path, f"data={dataset}", f"data.root={trees[dataset]}",
                      "data.num_workers=0",
                      f"method={method}", *ckpt, *extra)  # fmt: skip
    with pytest.warns(UserWarning) if method == "vrpsam" else _nothing():
        result = evaluate(cfg)
    written = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert written.keys() >= EVAL_KEYS and written == json.loads(json.dumps(result))
    assert written["dataset"] == dataset and written["split"] == "novel"
    if dataset == "fss1000" and method == "vrpsam":
        # A capped FSS-1000 list is a class-balanced prefix: 12 episodes cover the 6 test classes
        # (the full pass, every test image once, is tested on the reader).
        assert written["episodes"] == 12 and len(written["classes_scored"]) == 6
        assert all(761 <= c <= 1000 for c in written["classes_scored"])
    if dataset == "lvis92i":
        assert written["fold"] == 2


def test_base_split_tests_base_classes_on_pascal_and_coco(
    compose_cfg, checkpoint, synthetic_coco_root, tmp_path
):
    # A few episodes each, without overlay figures (the evaluations above draw them).
    pascal = compose_cfg("eval", tmp_path, f"ckpt_path={checkpoint}", "eval.split=base",
                         "eval.episodes=15", "eval.overlays=0", run="pascal")  # fmt: skip
    result = evaluate(pascal)
    assert result["split"] == "base" and result["episodes"] == 15
    assert set(result["classes_scored"]) <= set(range(6, 21))  # fold 0's base classes
    coco = compose_cfg("eval", tmp_path, "data=coco20i", f"data.root={synthetic_coco_root}",
                       "data.source_options.min_area=400", "data.num_workers=0", "method=gpsam",
                       "eval.split=base", "eval.overlays=0",
                       "eval.episodes=10", run="coco")  # fmt: skip
    result = evaluate(coco)
    assert result["split"] == "base" and result["episodes"] == 10
    assert not {1, 5, 9, 13} & set(result["classes_scored"])  # no novel class of fold 0
    lists = sorted(p.name for p in (tmp_path / "episodes").glob("*.json"))
    assert any("_base_" in name for name in lists)


def test_an_unknown_eval_split_is_named(compose_cfg, tmp_path):
    cfg = compose_cfg("eval", tmp_path, "method=gpsam", "eval.split=novle")
    with pytest.raises(ValueError, match=r"eval.split must be novel or base, got 'novle'"):
        evaluate(cfg)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run_benchmarks_args(trees, tmp_path) -> list[str]:
    return ["--out", str(tmp_path / "bench"), "--methods", "gpsam",
            "--data", f"fss1000={trees['fss1000']}", "--", "experiment=demo",
            "eval.episodes=4", "data.num_workers=0", f"paths.output_dir={tmp_path}"]  # fmt: skip


def check_benchmarks_table(out: Path):
    table = (out / "benchmarks.md").read_text()
    assert "| method | fss1000 mIoU | s/episode |" in table
    assert table.splitlines()[2].startswith("| gpsam | ")
    assert (out / "gpsam" / "fss1000" / "fold0" / "eval.json").is_file()


def test_run_benchmarks_script_writes_one_method_by_benchmark_table(trees, tmp_path, monkeypatch):
    """The script's main in this process, each vrpsam-eval run it asks for done by evaluate in
    this process too (two Python start-ups fewer); the script and its vrpsam-eval runs as
    commands: the slow test below."""
    import runpy
    import sys

    from hydra import compose, initialize_config_dir

    from vrpsam.conf import CONFIG_DIR

    monkeypatch.syspath_prepend(str(SCRIPTS))  # as Python does for a script: its own folder
    import eval_runs

    asked = []

    def run_eval(run_dir: Path, overrides: list[str]) -> Path:
        asked.append(overrides)
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("eval", overrides=[*overrides, f"paths.run_dir={run_dir}"])
        evaluate(cfg)
        return run_dir / "eval.json"

    monkeypatch.setattr(eval_runs, "run_eval", run_eval)
    monkeypatch.setattr(sys, "argv", ["run_benchmarks.py", *run_benchmarks_args(trees, tmp_path)])
    runpy.run_path(str(SCRIPTS / "run_benchmarks.py"), run_name="__main__")
    assert len(asked) == 1 and "method=gpsam" in asked[0] and "data.fold=0" in asked[0]
    check_benchmarks_table(tmp_path / "bench")


@pytest.mark.slow
def test_run_benchmarks_script_runs_as_a_command(trees, tmp_path):
    import subprocess
    import sys

    command = [sys.executable, str(SCRIPTS / "run_benchmarks.py"),
               *run_benchmarks_args(trees, tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    check_benchmarks_table(tmp_path / "bench")
