"""Loading checkpoints of the official VRP-SAM code (``best_model.pt``).

This is the one module where the official vocabulary appears: the official code says "support" for
our *reference* and "query" for our *target* (and "query" again for the learnable prompt queries).
Its checkpoint is a DDP state dict (``module.`` prefix) of the learnable VRP encoder plus the frozen
backbone under ``layer0`` … ``layer4`` (DESIGN §7).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vrpsam.modeling.backbones import (
    ResNetBackbone,
    VGGBackbone,
    resnet_state_to_timm,
    vgg_state_to_ours,
)
from vrpsam.modeling.vrp_sam import VRPSAM, build_vrp_sam
from vrpsam.modeling.weights import WeightFileError, load_strict, read_state_dict

OFFICIAL_SOURCE = "the VRP-SAM authors' release (best_model.pt)"
_BACKBONE_HEADS = ("layer0.", "layer1.", "layer2.", "layer3.", "layer4.")


def _prefix_pairs(num_layers: int) -> list[tuple[str, str]]:
    """(official prefix, vrpsam encoder prefix) pairs; one table serves both directions."""
    pairs = [
        ("downsample_query.0.", "reduce.0."),
        ("merge_1.0.", "merge.0."),
        ("transformer_decoder.supp_q_feat.", "queries."),
    ]
    blocks = [
        ("transformer_cross_attention_layers_0", "multihead_attn", "reference_cross"),
        ("transformer_self_attention_layers_0", "self_attn", "reference_self"),
        ("transformer_cross_attention_layers", "multihead_attn", "target_cross"),
        ("transformer_self_attention_layers", "self_attn", "target_self"),
    ]
    for i in range(num_layers):
        for official, attn, ours in blocks:
            pairs.append(
                (f"transformer_decoder.{official}.{i}.{attn}.", f"layers.{i}.{ours}.attn.")
            )
            pairs.append((f"transformer_decoder.{official}.{i}.norm.", f"layers.{i}.{ours}.norm."))
    return pairs


def encoder_to_official(encoder_state: dict, num_layers: int = 1) -> dict:
    """Rename a vrpsam VRP-encoder state dict to the official key names."""
    out = {}
    for key, value in encoder_state.items():
        for official, ours in _prefix_pairs(num_layers):
            if key.startswith(ours):
                out[official + key[len(ours) :]] = value
                break
        else:
            raise KeyError(f"no official name for encoder key {key!r}")
    return out


def split_official_state(state: dict, num_layers: int = 1) -> tuple[dict, dict, list[str]]:
    """Split an official state dict into (encoder state in our names, backbone state in official
    names, keys that are neither)."""
    encoder, backbone, leftover = {}, {}, []
    pairs = _prefix_pairs(num_layers)
    for key, value in state.items():
        if key.startswith(_BACKBONE_HEADS):
            backbone[key] = value
            continue
        for official, ours in pairs:
            if key.startswith(official):
                encoder[ours + key[len(official) :]] = value
                break
        else:
            leftover.append(key)
    return encoder, backbone, leftover


def load_official_checkpoint(
    path: str | Path,
    *,
    backbone: str,
    sam: str,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    **build_kwargs,
) -> VRPSAM:
    """Build VRP-SAM in official-compatibility mode carrying an official checkpoint's weights.

    The backbone is loaded from the checkpoint when it holds ``layer0`` … ``layer4`` (the official
    ResNet-50 is the deep-stem one: use ``backbone="resnet50_deepstem"``), else from
    ``backbone_checkpoint``.

    Raises:
        FileNotFoundError: missing file.
        WeightFileError: missing learnable keys, unexpected keys, shapes that do not fit, or a
            backbone section that does not fit the chosen backbone.
    """
    state = read_state_dict(
        path, what="official VRP-SAM checkpoint", source=OFFICIAL_SOURCE, config_key="ckpt_path"
    )
    model = build_vrp_sam(
        backbone=backbone,
        sam=sam,
        sam_checkpoint=sam_checkpoint,
        backbone_checkpoint=backbone_checkpoint,
        official_compat=True,
        **build_kwargs,
    )
    encoder_state, backbone_state, leftover = split_official_state(state, len(model.encoder.layers))
    if leftover:
        raise WeightFileError(
            f"{path}: {len(leftover)} unexpected keys that are neither VRP encoder nor backbone "
            f"(e.g. {leftover[:4]}); is this an official VRP-SAM best_model.pt?"
        )
    load_strict(model.encoder, encoder_state, what=f"VRP encoder from official checkpoint {path}")
    if backbone_state:
        _load_official_backbone(model, backbone, backbone_state, path)
    return model


def _load_official_backbone(model: VRPSAM, name: str, state: dict, path) -> None:
    if isinstance(model.backbone, ResNetBackbone):
        if name != "resnet50_deepstem" and "layer0.3.weight" in state:
            raise WeightFileError(
                f"{path} holds the official deep-stem ResNet-50; build with "
                f"backbone='resnet50_deepstem' to load it."
            )
        mapped = {f"body.{k}": v for k, v in resnet_state_to_timm(state, deep_stem=True).items()}
    elif isinstance(model.backbone, VGGBackbone):
        mapped = vgg_state_to_ours(state)
    else:
        raise WeightFileError(
            f"{path} holds a backbone, but backbone {name!r} has no official layout"
        )
    load_strict(model.backbone, mapped, what=f"backbone from official checkpoint {path}")
    model.backbone.freeze()


def save_as_official(model: VRPSAM, path: str | Path) -> None:
    """Write the learnable weights under official names, ``module.``-prefixed as DDP saved them."""
    official = encoder_to_official(model.encoder.state_dict(), len(model.encoder.layers))
    torch.save({f"module.{k}": v for k, v in official.items()}, path)
