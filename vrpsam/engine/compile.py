"""``torch.compile`` opt-ins for the parts every step runs."""

from __future__ import annotations

import torch

from vrpsam.modeling.vrp_sam import VRPSAM

COMPILE_MODES = ("none", "encoder", "all")


def compile_model(model: VRPSAM, mode: str) -> None:
    """Compile the parts ``mode`` names, in place: parameter names (and so checkpoints and
    exports) stay as they are, since methods are wrapped rather than modules replaced."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {COMPILE_MODES}, got {mode!r}")
    if mode == "none":
        return
    encoder = model.encoder
    encoder.encode_reference = torch.compile(encoder.encode_reference)
    encoder.encode_target = torch.compile(encoder.encode_target)
    # decode_batch drives the decoder's parts; its two-way transformer is the heavy one.
    model.sam.sam.mask_decoder.transformer.compile()
    if mode == "all":
        model.backbone.mid = torch.compile(model.backbone.mid)
        model.backbone.high = torch.compile(model.backbone.high)
        model.sam.sam.image_encoder.compile()
