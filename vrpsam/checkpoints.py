"""Rebuilding a trained VRP-SAM from a training checkpoint or an export, for evaluation and export.

Training checkpoints hold the learnable weights, the architecture (``build_spec``) and what the run
trained on (``run_info``, including the frozen weight files it used); exports hold the same in
``config.json``. Frozen weights are read from the files given, else from the files recorded at
training time when they still exist.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vrpsam.lit_module import check_same_architecture
from vrpsam.modeling.vrp_sam import VRPSAM, build_vrp_sam
from vrpsam.modeling.weights import WeightFileError, load_strict

ENCODER_PREFIX = "model.encoder."


def read_training_checkpoint(path: str | Path) -> dict:
    """A ``vrpsam-train`` checkpoint, loaded without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}; pass ckpt_path=RUN/checkpoints/best.ckpt of a "
            "vrpsam-train run"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightFileError(f"cannot read checkpoint {path}: {err}") from err
    if "vrpsam" not in checkpoint or "state_dict" not in checkpoint:
        raise WeightFileError(
            f"{path} is not a vrpsam-train checkpoint (no 'vrpsam' section); for the authors' "
            f"best_model.pt use vrpsam.load_official_checkpoint"
        )
    return checkpoint


def _frozen_path(given, recorded) -> str | None:
    if given:
        return str(given)
    if recorded and Path(recorded).is_file():
        return str(recorded)
    return None


def load_trained_model(
    *,
    ckpt_path: str | Path | None = None,
    export_dir: str | Path | None = None,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    expect: dict | None = None,
    sam_image_encoder: bool = True,
) -> tuple[VRPSAM, dict]:
    """The trained model of a checkpoint or export, and what it was trained on.

    Args:
        ckpt_path: a ``vrpsam-train`` checkpoint; or
        export_dir: a ``vrpsam-export`` folder.
        sam_checkpoint, backbone_checkpoint: frozen weight files (default: those recorded).
        expect: architecture keys the caller's config asks for (``backbone``, ``sam``, ...; None
            values mean "whatever was trained"); a mismatch is refused with a clear message.
        sam_image_encoder: False when image embeddings come from a feature cache.

    Returns:
        (model in eval mode, run info: dataset, fold, image size, frozen weight files, ...).
    """
    if (ckpt_path is None) == (export_dir is None):
        raise ValueError("give exactly one of ckpt_path (a training checkpoint) or export_dir")
    expect = {k: v for k, v in (expect or {}).items() if v is not None}
    if export_dir is not None:
        from vrpsam.export import load_export, read_export_config

        config = read_export_config(export_dir)
        check_same_architecture(config["model"], {**config["model"], **expect}, "export")
        info = dict(config.get("training", {}))
        model = load_export(
            export_dir,
            sam_checkpoint=_frozen_path(sam_checkpoint, info.get("sam_checkpoint")),
            backbone_checkpoint=_frozen_path(backbone_checkpoint, info.get("backbone_checkpoint")),
            sam_image_encoder=sam_image_encoder,
        )
        return model, info
    checkpoint = read_training_checkpoint(ckpt_path)
    spec = checkpoint["vrpsam"]["build_spec"]
    info = dict(checkpoint["vrpsam"].get("run_info", {}))
    check_same_architecture(spec, {**spec, **expect}, "checkpoint")
    sam_file = _frozen_path(sam_checkpoint, info.get("sam_checkpoint"))
    backbone_file = _frozen_path(backbone_checkpoint, info.get("backbone_checkpoint"))
    model = build_vrp_sam(
        **spec,
        sam_checkpoint=sam_file,
        backbone_checkpoint=backbone_file,
        sam_image_encoder=sam_image_encoder,
    )
    encoder = {
        k[len(ENCODER_PREFIX) :]: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith(ENCODER_PREFIX)
    }
    load_strict(model.encoder, encoder, what=f"VRP encoder of checkpoint {ckpt_path}")
    info.update(sam_checkpoint=sam_file, backbone_checkpoint=backbone_file)
    return model.eval(), info
