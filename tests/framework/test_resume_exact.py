"""Resume is exact: a run stopped by a signal and resumed with ckpt_path=last ends bit for bit
where the uninterrupted run ends (weights, optimizer, scheduler, steps, epochs, metrics.json); a
checkpoint of another experiment is refused."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from vrpsam.artifacts.checkpoints import read_training_checkpoint
from vrpsam.engine import training as training_module
from vrpsam.engine.training import train

# 2 steps per epoch (4 episodes, total batch 2), 3 epochs; with a step limit, which Lightning once
# resumed one epoch off from an end-of-epoch checkpoint.
RUN = ["trainer.max_epochs=3", "trainer.max_steps=6", "trainer.log_every_n_steps=1",
       "total_batch_size=2", "data.train_episodes_per_epoch=4", "data.val_episodes=2",
       "test_after_training=false", "test_before_training=false",
       "cache_features=none"]  # fmt: skip


class SendSignal(L.Callback):
    """Send ``signum`` to this process when the training step ``step`` starts, as a user's Ctrl-C
    (SIGINT) or a cluster's pre-emption (SIGTERM) would."""

    def __init__(self, signum: int, step: int) -> None:
        self.signum, self.step = signum, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def interrupted(cfg, monkeypatch, signum: int, step: int) -> None:
    """Train ``cfg`` with ``signum`` sent at ``step``; the run must stop as Lightning stops on
    Ctrl-C (SystemExit)."""
    original = training_module.hydra.utils.instantiate

    def with_signal(node, *args, **kwargs):
        if OmegaConf.is_config(node) and node.get("_target_") == "lightning.Trainer":
            kwargs["callbacks"] = [*kwargs["callbacks"], SendSignal(signum, step)]
        return original(node, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(training_module.hydra.utils, "instantiate", with_signal)
        with pytest.raises(SystemExit):
            train(cfg)


@pytest.fixture(scope="module")
def straight(compose_cfg, tmp_path_factory) -> Path:
    """The uninterrupted run's folder."""
    out = tmp_path_factory.mktemp("straight")
    train(compose_cfg("train", out, *RUN))
    return out / "run"


def assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same final checkpoint state and the same metrics.json."""
    ca = read_training_checkpoint(a / "checkpoints" / "last.ckpt")
    cb = read_training_checkpoint(b / "checkpoints" / "last.ckpt")
    assert (ca["global_step"], ca["epoch"]) == (cb["global_step"], cb["epoch"]) == (6, 2)
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    for key, value in ca["state_dict"].items():
        assert torch.equal(value, cb["state_dict"][key]), key
    moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in ca["optimizer_states"][0]["state"].values()]
    others = [(s["exp_avg"], s["exp_avg_sq"]) for s in cb["optimizer_states"][0]["state"].values()]
    assert all(torch.equal(x, y) for m, o in zip(moments, others, strict=True)
               for x, y in zip(m, o, strict=True))  # fmt: skip
    assert ca["lr_schedulers"] == cb["lr_schedulers"]
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    for key in ("steps", "epochs_completed", "val_history"):
        assert ma[key] == mb[key], key
    assert len(ma["val_history"]) == 3


# (signal, the step it arrives in, the step last.ckpt is saved at)
STOPS = [
    # Ctrl-C in the first step of epoch 1: the run stops after that step (step 3 of 6, inside the
    # epoch) and writes last.ckpt there, the loader's position included.
    pytest.param(signal.SIGINT, 2, 3, id="sigint_inside_an_epoch"),
    # A step that validation follows is not saved: the run stops after the epoch's validation and
    # checkpoints, and resumes from that end-of-epoch checkpoint (the path Lightning resumed one
    # epoch off under a step limit).
    pytest.param(signal.SIGTERM, 3, 4, id="sigterm_in_the_last_step_of_an_epoch",
                 marks=pytest.mark.slow),
]  # fmt: skip


@pytest.mark.parametrize(("signum", "step", "saved_at"), STOPS)
def test_a_signal_saves_last_ckpt_and_the_resume_is_bit_for_bit(
    straight, compose_cfg, tmp_path, monkeypatch, signum, step, saved_at
):
    interrupted(compose_cfg("train", tmp_path, *RUN), monkeypatch, signum, step=step)
    last = read_training_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == saved_at
    train(compose_cfg("train", tmp_path, *RUN, "ckpt_path=last"))
    assert_same_run(straight, tmp_path / "run")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.fold=1", "data.fold=0 (this run: data.fold=1)"),
        ("data.shot=2", "data.shot=1 (this run: data.shot=2)"),
        ("data.annotation=box", "data.annotation=mask (this run: data.annotation=box)"),
        ("data=coco20i", "data.dataset=pascal (this run: data.dataset=coco)"),
    ],
)
def test_resuming_a_checkpoint_of_another_experiment_is_refused(
    straight, compose_cfg, tmp_path, override, named
):
    last = straight / "checkpoints" / "last.ckpt"
    cfg = compose_cfg("train", tmp_path, *RUN, f"ckpt_path={last}", override)
    with pytest.raises(ValueError, match="cannot resume") as caught:
        train(cfg)
    assert named in str(caught.value)
    assert "start a new run (a new hydra.run.dir, without ckpt_path)" in str(caught.value)
