"""bf16-mixed training end to end, and the torch.compile opt-in."""

import warnings

import pytest
import torch

from vrpsam.engine.compile import compile_model
from vrpsam.engine.training import train
from vrpsam.modeling.precision import native_low_precision


def test_bf16_mixed_training_and_validation_run_end_to_end(make_cfg):
    # bf16 is emulated on most CPUs (slow): a few episodes show the path works end to end.
    small = ["data.train_episodes_per_epoch=4", "data.val_episodes=2", "data.test_episodes=2",
             "test_before_training=false", "test_after_training=false"]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics, objects = train(make_cfg("train", "trainer.precision=bf16-mixed", *small))
    emulated = any("autocast emulates" in str(w.message) for w in caught)
    assert emulated == (not native_low_precision("cpu", torch.bfloat16))
    assert objects["trainer"].precision == "bf16-mixed"
    loss = objects["trainer"].callback_metrics["train/loss"]
    assert torch.isfinite(loss)
    assert 0 <= metrics["val_last"]["miou"] <= 100
    # The learnable weights stay fp32 (mixed precision computes in bf16, keeps fp32 masters).
    module = objects["module"]
    assert all(p.dtype == torch.float32 for p in module.model.encoder.parameters())


def test_compile_mode_is_checked():
    with pytest.raises(ValueError, match="compile must be one of"):
        compile_model(None, "fast")
