"""Frozen encoders under autocast: follow it, or stay fp32 where low precision is emulated."""

import pytest
import torch

from vrpsam.modeling.precision import (
    check_frozen_autocast,
    emulation_warning,
    native_low_precision,
)


@pytest.fixture(autouse=True)
def _restore_the_default(small_model):
    yield
    small_model.frozen_autocast = "auto"  # the model is shared by the module's tests


def frozen_dtype(model, setting, size=32):
    """The dtype of the target's frozen features under CPU bf16 autocast with ``setting``."""
    model.frozen_autocast = setting
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mid, high = model.target_features(torch.randn(1, 3, size, size))
    assert mid.dtype == high.dtype
    return mid.dtype


def test_off_keeps_the_frozen_encoders_in_fp32_and_on_follows_autocast(small_model):
    assert frozen_dtype(small_model, "off") == torch.float32
    assert frozen_dtype(small_model, "on") == torch.bfloat16


def test_auto_follows_autocast_only_where_the_cpu_has_native_bf16(small_model):
    expected = torch.bfloat16 if native_low_precision("cpu", torch.bfloat16) else torch.float32
    assert frozen_dtype(small_model, "auto") == expected


def test_the_learnable_path_stays_mixed_when_the_frozen_encoders_do_not(small_model, make_episode):
    targets, references, masks = make_episode(size=128)
    seen = []  # output dtypes of the VRP encoder's convolutions and linear layers
    layers = [
        m for m in small_model.encoder.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype)) for m in layers]
    small_model.frozen_autocast = "off"
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            small_model.prompt_embeddings(targets, references, masks)
    finally:
        for hook in hooks:
            hook.remove()
    assert seen and set(seen) == {torch.bfloat16}


def test_without_autocast_every_setting_computes_in_fp32(small_model):
    for setting in ("auto", "on", "off"):
        small_model.frozen_autocast = setting
        mid, _ = small_model.target_features(torch.randn(1, 3, 32, 32))
        assert mid.dtype == torch.float32


def test_an_unknown_setting_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, on, off"):
        check_frozen_autocast("fp16")
    assert native_low_precision("cuda", torch.bfloat16)


def test_emulated_low_precision_is_warned_about_and_native_is_not():
    assert emulation_warning("32-true", "cpu") is None
    assert emulation_warning("bf16-mixed", "cuda") is None
    warning = emulation_warning("bf16-mixed", "cpu")
    if native_low_precision("cpu", torch.bfloat16):
        assert warning is None
    else:
        assert "32-true" in warning and "emulates" in warning
