"""Run-level guarantees: resume equals an uninterrupted run, DDP equals one process, bad setups."""

import json
import sys
from pathlib import Path

import pytest
import torch

from vrpsam.artifacts.checkpoints import read_training_checkpoint
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.runtime import per_process_batch, world_size
from vrpsam.engine.training import train


def encoder_weights(path):
    return read_training_checkpoint(path)["state_dict"]


# Three trainings (slow). The default suite resumes an interrupted run with ckpt_path=last in
# test_first_hour.py::test_ctrl_c_says_how_to_resume_and_resume_keeps_the_csv_rows.
@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(make_cfg):
    two = ["trainer.max_epochs=2", "test_after_training=false", "test_before_training=false",
           "data.train_episodes_per_epoch=8", "data.val_episodes=4"]  # fmt: skip
    train(make_cfg("train", *two, run="straight"))
    # "Killed" after epoch 1 of 2, then continued from its last checkpoint in the same run folder.
    stop = [
        "+callbacks.stop._target_=vrpsam.engine.callbacks.StopAfterEpochs",
        "+callbacks.stop.epochs=1",
    ]
    train(make_cfg("train", *two, *stop, run="resumed"))
    train(make_cfg("train", *two, "ckpt_path=last", run="resumed"))
    out = make_cfg("train").paths.output_dir
    a = encoder_weights(f"{out}/straight/checkpoints/last.ckpt")
    b = encoder_weights(f"{out}/resumed/checkpoints/last.ckpt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    ma = json.loads(Path(f"{out}/straight/metrics.json").read_text())
    mb = json.loads(Path(f"{out}/resumed/metrics.json").read_text())
    assert len(ma["val_history"]) == 2
    assert [v["miou"] for v in ma["val_history"]] == [v["miou"] for v in mb["val_history"]]


def spawned_evaluation_equals_one_process(make_cfg, devices, episodes):
    common = [f"eval.episodes={episodes}", "eval.batch_size=4"]
    one = evaluate(make_cfg("eval", *common, run="one"))
    spawned = evaluate(make_cfg("eval", *common, "trainer=ddp_cpu", f"trainer.devices={devices}",
                                run="spawned"))  # fmt: skip
    for key in ("miou", "fbiou", "episodes"):
        assert spawned[key] == pytest.approx(one[key], abs=1e-9), key
    assert spawned["per_class_iou"] == pytest.approx(one["per_class_iou"], abs=1e-9)


@pytest.mark.skipif(sys.platform != "linux", reason="gloo process groups on Linux CI")
def test_ddp_cpu_evaluation_in_one_spawned_process_equals_in_process(make_cfg):
    """The multi-process path (trainer=ddp_cpu: a spawned worker in a gloo group, the episodes
    sharded by rank and the results reduced) at world size 1; two processes: the slow test below."""
    spawned_evaluation_equals_one_process(make_cfg, devices=1, episodes=8)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="gloo process groups on Linux CI")
def test_ddp_cpu_evaluation_equals_one_process(make_cfg):
    """2 processes, each with its shard of the episodes, reduce to the single-process numbers."""
    spawned_evaluation_equals_one_process(make_cfg, devices=2, episodes=12)


def test_total_batch_of_8_is_kept_or_refused():
    assert per_process_batch(8, 2) == 4
    with pytest.raises(ValueError, match="total batch of 8"):
        per_process_batch(8, 3)
    assert world_size({"devices": 2, "num_nodes": 2}) == 4
    assert world_size({"devices": [0, 1, 2], "num_nodes": 1}) == 3
    assert world_size({"devices": "0,1", "num_nodes": 1}) == 2


def test_devices_that_cannot_give_total_batch_8_fail_before_training(make_cfg):
    with pytest.raises(ValueError, match="cannot be split evenly over 3 processes"):
        train(make_cfg("train", "trainer.devices=3"))


def test_wandb_logger_without_wandb_says_what_to_install(make_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'vrpsam\[wandb\]'"):
        train(make_cfg("train", "logger=wandb"))


def test_fold_out_of_range_is_refused(make_cfg):
    with pytest.raises(ValueError, match=r"fold must be 0\.\.3"):
        train(make_cfg("train", "data.fold=4"))
