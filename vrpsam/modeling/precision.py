"""Which precision the frozen encoders run in when training or evaluating under autocast.

The frozen backbone and SAM image encoder only produce constants for the learnable path, so
their precision is a question of speed. Where the hardware computes bf16/fp16 natively (GPUs,
CPUs with AVX512-BF16/AMX) they follow autocast like everything else. On a CPU without it,
autocast emulates the low precision: measured on a 2-core AVX2 machine, ResNet-18 features of
8 images at 128 px took 51 s in bf16 against 0.59 s in fp32, so there they run in fp32 while the
learnable path stays mixed.
"""

from __future__ import annotations

import contextlib

import torch

FROZEN_AUTOCAST = ("auto", "on", "off")


def native_low_precision(device_type: str, dtype: torch.dtype) -> bool:
    """Whether ``device_type`` computes ``dtype`` natively rather than by emulation."""
    if device_type != "cpu":
        return True
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if dtype == torch.float16:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return True


def check_frozen_autocast(setting: str) -> str:
    if setting not in FROZEN_AUTOCAST:
        raise ValueError(
            f"frozen_autocast={setting!r} is not one of {', '.join(FROZEN_AUTOCAST)}: 'auto' "
            f"follows autocast where the hardware has native low precision, 'on' always, "
            f"'off' never (frozen encoders in fp32)"
        )
    return setting


def frozen_autocast_context(setting: str, device_type: str) -> contextlib.AbstractContextManager:
    """Context for running frozen encoders on ``device_type`` under the ambient autocast."""
    if setting == "on" or not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    native = native_low_precision(device_type, torch.get_autocast_dtype(device_type))
    if setting == "auto" and native:
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)


def emulation_warning(precision: str, device_type: str) -> str | None:
    """A warning for a low-precision Lightning ``precision`` the device would only emulate."""
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(str(precision).split("-")[0])
    if dtype is None or native_low_precision(device_type, dtype):
        return None
    return (
        f"trainer.precision={precision} on a CPU without native {dtype} (no AVX512-BF16/AMX): "
        f"autocast emulates it, many times slower than 32-true (README: performance). "
        f"Use trainer.precision=32-true on this machine"
    )
