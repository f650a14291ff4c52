"""Reading weight files from local paths, safely and with errors that say what to do.

Nothing here downloads: every weight comes from a path the user gives. Loads never unpickle
arbitrary objects (``weights_only=True`` or safetensors).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class WeightFileError(ValueError):
    """A weight file that exists but does not fit what it was loaded into."""


def read_state_dict(path: str | Path, *, what: str, source: str, config_key: str) -> dict:
    """Read a state dict from a ``.safetensors``, ``.pth``, ``.pt`` or ``.bin`` file.

    Common wrappers are unwrapped (``{"state_dict": ...}``, ``{"model": ...}``) and a DDP
    ``module.`` prefix is stripped.

    Args:
        path: local file.
        what: what the file should hold, for messages ("SAM vit_b checkpoint").
        source: where users get it, for messages.
        config_key: the config key / argument that points at it, for messages.

    Raises:
        FileNotFoundError: the file does not exist (the message names the file, its source and key).
        WeightFileError: the file cannot be read as a state dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found: {path}. Get it from {source} and point `{config_key}` at it "
            f"(or leave `{config_key}` empty to build random weights)."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, pickle with custom classes, wrong format
        # Not torch's text: it advises weights_only=False, i.e. running code from the file.
        raise WeightFileError(
            f"cannot read {what} from {path} ({type(err).__name__}: the file is truncated, "
            f"corrupt, or holds objects other than tensors). Expected a PyTorch state dict "
            f"(.pth/.pt/.bin) or a .safetensors file; see {source}."
        ) from None
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightFileError(f"{path} does not hold a state dict of tensors ({what}).")
    return {_strip_prefix(k, "module."): v for k, v in state.items()}


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, what: str) -> None:
    """Load ``state`` into ``module`` requiring the exact same keys and shapes.

    Raises:
        WeightFileError: naming missing keys, unexpected keys and shape mismatches (a few of each).
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if mismatched:
            shapes = [
                f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                for k in mismatched[:3]
            ]
            parts.append(f"{len(mismatched)} with other shapes (e.g. {shapes})")
        raise WeightFileError(f"{what} does not fit the model: " + "; ".join(parts) + ".")
    module.load_state_dict(state, strict=True)


def _strip_prefix(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key
