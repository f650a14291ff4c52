"""What a new user hit in the first hour: no silent wrong answer, and the obvious first steps work.

Each test is named after the behaviour it guards (issue "No silent wrong answers").
"""

import csv
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vrpsam import build_vrp_sam
from vrpsam.artifacts.checkpoints import read_training_checkpoint
from vrpsam.artifacts.exports import export_model, load_export
from vrpsam.artifacts.frozen_weights import FrozenWeightsError
from vrpsam.cli.export import export
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.training import train
from vrpsam.modeling.weights import WeightFileError
from vrpsam.predictor import VRPSAMPredictor

TINY_SAM = {"image_size": 128, "patch_size": 8, "window_size": 8}

NO_TESTS = ["test_after_training=false", "test_before_training=false"]


@pytest.fixture(scope="module")
def movable_run(compose_cfg, frozen_files, tmp_path_factory):
    """A short run on frozen files of its own (which tests may move away), and its export."""
    out = tmp_path_factory.mktemp("movable")
    weights = out / "weights"
    weights.mkdir()
    for file in frozen_files:
        shutil.copy(file, weights / file.name)
    sam_file, backbone_file = (weights / f.name for f in frozen_files)
    cfg = compose_cfg("train", out, f"model.sam_checkpoint={sam_file}",
                      f"model.backbone_checkpoint={backbone_file}",
                      "data.train_episodes_per_epoch=8", *NO_TESTS)  # fmt: skip
    train(cfg)
    ckpt = out / "run" / "checkpoints" / "best.ckpt"
    export_dir = export(compose_cfg("export", out, f"ckpt_path={ckpt}", f"out_dir={out / 'exp'}"))
    return {"out": out, "ckpt": ckpt, "export": export_dir, "sam": sam_file,
            "backbone": backbone_file}  # fmt: skip


def target_image():
    return np.random.default_rng(3).integers(0, 255, (128, 128, 3), dtype=np.uint8)


def test_export_finds_its_frozen_files_where_they_were_recorded(movable_run):
    predictor = VRPSAMPredictor.from_export(movable_run["export"])  # no paths given
    given = VRPSAMPredictor.from_export(movable_run["export"], sam_checkpoint=movable_run["sam"],
                                        backbone_checkpoint=movable_run["backbone"])  # fmt: skip
    for p in (predictor, given):
        p.set_reference(target_image(), box=(20, 20, 90, 90))
    np.testing.assert_array_equal(predictor.predict(target_image())[2],
                                  given.predict(target_image())[2])  # fmt: skip
    config = json.loads((movable_run["export"] / "config.json").read_text())
    assert config["frozen_weights"]["sam"]["path"] == str(movable_run["sam"])
    assert config["protocol"]["name"] == "default"


def test_export_whose_frozen_files_moved_away_is_refused_naming_them(movable_run, tmp_path, capsys):
    moved = tmp_path / "moved"
    moved.mkdir()
    for key in ("sam", "backbone"):
        shutil.move(movable_run[key], moved / movable_run[key].name)
    try:
        export_dir, sam = movable_run["export"], moved / "sam_tiny.pth"
        with pytest.raises(FrozenWeightsError, match=r"sam_tiny\.pth.*no longer exists.*sam_chec"):
            VRPSAMPredictor.from_export(export_dir)
        with pytest.raises(FrozenWeightsError, match=r"resnet18\.pth.*backbone_checkpoint"):
            VRPSAMPredictor.from_export(export_dir, sam_checkpoint=sam)
        with pytest.raises(FrozenWeightsError, match=r"model\.sam_checkpoint"):
            load_export(export_dir)
        # The command line refuses too, with the files named.
        image = tmp_path / "ref.png"
        from PIL import Image

        Image.fromarray(target_image()).save(image)
        argv = [sys.executable, "-m", "vrpsam.cli.predict", f"export_dir={export_dir}",
                f"reference.image={image}", "reference.box=[10,10,60,60]", f"targets={image}",
                f"out_dir={tmp_path / 'pred'}"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert "sam_tiny.pth" in done.stderr and "no longer exists" in done.stderr
        assert done.returncode == 1 and "Traceback" not in done.stderr  # the message alone
        # Random frozen weights only when asked for by name.
        with pytest.warns(UserWarning, match="random SAM weights instead of sam_tiny.pth"):
            VRPSAMPredictor.from_export(movable_run["export"], random_frozen_weights=True)
    finally:
        for key in ("sam", "backbone"):
            shutil.move(moved / movable_run[key].name, movable_run[key])


def test_a_checkpoint_whose_frozen_files_moved_away_is_refused_by_eval(movable_run, compose_cfg):
    backbone = movable_run["backbone"]
    hidden = backbone.with_suffix(".hidden")
    backbone.rename(hidden)
    try:
        cfg = compose_cfg("eval", movable_run["out"], f"ckpt_path={movable_run['ckpt']}",
                          "eval.episodes=4", run="eval_moved")  # fmt: skip
        with pytest.raises(FrozenWeightsError, match=r"model\.backbone_checkpoint=PATH"):
            evaluate(cfg)
    finally:
        hidden.rename(backbone)


def test_a_random_weight_export_predicts_the_same_in_every_run(tmp_path):
    model = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs=TINY_SAM)
    export_model(model, tmp_path, training={"image_size": 128})
    outputs = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # another process, another global RNG state
        predictor = VRPSAMPredictor.from_export(tmp_path)
        predictor.set_reference(target_image(), box=(20, 20, 90, 90))
        outputs.append(predictor.predict(target_image())[2])
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_eval_takes_image_size_from_the_checkpoint_and_warns_on_an_override(
    movable_run, synthetic_voc_root, tmp_path
):
    from hydra import compose, initialize_config_dir

    from vrpsam.conf import CONFIG_DIR

    def cfg(*extra):
        overrides = ["data=synthetic", f"data.root={synthetic_voc_root}",
                     f"ckpt_path={movable_run['ckpt']}", "eval.episodes=4",
                     f"paths.output_dir={tmp_path}", f"paths.run_dir={tmp_path / 'e'}",
                     *extra]  # fmt: skip
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name="eval", overrides=overrides)

    plain = cfg()
    assert plain.data.image_size is None  # nothing in the command line says 128
    result = evaluate(plain)
    assert result["image_size"] == 128 and result["annotation"] == "mask"
    with pytest.warns(UserWarning, match=r"data.image_size: checkpoint 128, this run 96"):
        assert evaluate(cfg("data.image_size=96"))["image_size"] == 96


def test_one_shot_then_five_shot_evals_share_an_output_folder(movable_run, compose_cfg):
    for shot in (1, 5, 1):
        cfg = compose_cfg("eval", movable_run["out"], f"ckpt_path={movable_run['ckpt']}",
                          "eval.episodes=2", f"eval.shot={shot}", run=f"shot{shot}")  # fmt: skip
        assert evaluate(cfg)["shot"] == shot
    lists = sorted(p.name for p in (movable_run["out"] / "episodes").glob("*_n2_*.json"))
    assert any("shot1" in n for n in lists) and any("shot5" in n for n in lists)


def test_max_steps_without_plus_validates_and_leaves_best_ckpt(make_cfg, tmp_path):
    cfg = make_cfg("train", "trainer.max_steps=2", "trainer.limit_val_batches=1",
                   "data.train_episodes_per_epoch=64", *NO_TESTS)  # fmt: skip
    metrics, objects = train(cfg)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert metrics["steps"] == 2 and metrics["epochs_completed"] == 0
    assert metrics["epochs"] == pytest.approx(2 / 8)  # 64 episodes per epoch, batch 8
    assert metrics["val_history"] and metrics["val_history"][-1]["step"] == 2
    report = next(c for c in objects["trainer"].callbacks if type(c).__name__ == "RunReport")
    assert [s for s, _ in report.losses] == [1, 2]  # every step is on the curve


def test_debug_limit_runs_a_short_real_run(make_cfg, tmp_path):
    metrics, _ = train(make_cfg("train", "debug=limit", *NO_TESTS))
    assert metrics["steps"] == 2  # 16 episodes per epoch in the test setting, batch 8
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


def test_ckpt_path_last_without_a_checkpoint_is_refused(make_cfg):
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last resumes the run folder"):
        train(make_cfg("train", "ckpt_path=last"))


class _Interrupt:
    """Raise KeyboardInterrupt at a given global step, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def __call__(self, trainer, *args):
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt


def test_ctrl_c_says_how_to_resume_and_resume_keeps_the_csv_rows(make_cfg, tmp_path, caplog):
    import lightning as L

    two = ["trainer.max_epochs=2", "trainer.log_every_n_steps=1", *NO_TESTS]
    cfg = make_cfg("train", *two)
    stopper = L.Callback()
    stopper.on_train_batch_end = _Interrupt(3)  # in epoch 1 (2 steps per epoch)
    from vrpsam.engine import training as train_module

    original = train_module.hydra.utils.instantiate

    def with_stopper(node, *args, **kwargs):
        if OmegaConf.is_config(node) and node.get("_target_") == "lightning.Trainer":
            kwargs["callbacks"] = [*kwargs["callbacks"], stopper]
        return original(node, *args, **kwargs)

    train_module.hydra.utils.instantiate = with_stopper
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(SystemExit):
            train(cfg)
    finally:
        train_module.hydra.utils.instantiate = original
    hint = " ".join(r.getMessage() for r in caplog.records)
    assert f"hydra.run.dir={tmp_path / 'run'} ckpt_path=last" in hint
    csv_file = tmp_path / "run" / "logs" / "metrics.csv"
    assert 1 in csv_steps(csv_file)
    metrics, _ = train(make_cfg("train", *two, "ckpt_path=last"))
    assert metrics["steps"] == 4
    steps = csv_steps(csv_file)
    # Lightning logs optimizer step k (0-based) as step k: epoch 0 is steps 0-1, epoch 1 is 2-3.
    assert {0, 1, 2, 3} <= set(steps), "epoch 0 rows kept, epoch 1 rows added"
    lr_rows = [s for s, kind in csv_rows(csv_file) if kind == "lr"]
    assert lr_rows == [0, 1, 2, 3], "the interrupted epoch's rows are not doubled"


def csv_steps(path):
    return [step for step, _ in csv_rows(path)]


def csv_rows(path):
    """(step, "lr" | "other") of every row of a metrics.csv."""
    with path.open(newline="") as handle:
        return [(int(float(row["step"])), "lr" if row.get("lr-AdamW") else "other")
                for row in csv.DictReader(handle)]  # fmt: skip


class NotATensor:
    """Something a checkpoint must not hold (loading it would run this module's code)."""


def test_a_corrupt_checkpoint_is_named_without_advising_weights_only_false(tmp_path, movable_run):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(movable_run["ckpt"].read_bytes()[:5000])
    with pytest.raises(WeightFileError, match="truncated or corrupt") as caught:
        read_training_checkpoint(broken)
    assert "weights_only" not in str(caught.value)
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"vrpsam": NotATensor()}, pickled)
    with pytest.raises(WeightFileError, match="objects other than tensors") as caught:
        read_training_checkpoint(pickled)
    assert "weights_only" not in str(caught.value)


def test_a_truncated_export_config_is_named(tmp_path):
    model = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs=TINY_SAM)
    export_model(model, tmp_path)
    config = tmp_path / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(WeightFileError, match=r"config\.json is not valid JSON.*vrpsam-export"):
        load_export(tmp_path)
