"""Rebuilding a trained VRP-SAM from a training checkpoint or an export, for evaluation and export.

Training checkpoints hold the learnable weights, the architecture (``build_spec``), the protocol
the run trained under, what it trained on (``run_info``: dataset, fold, shot, image size, ...) and
the record of its frozen weight files; exports hold the same in ``config.json``. Frozen weights
are taken from the files given, else from the recorded files when they still exist unchanged, and
refused otherwise (:mod:`vrpsam.artifacts.frozen_weights`).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from vrpsam.artifacts import frozen_weights as frozen
from vrpsam.artifacts.architecture import check_same_architecture
from vrpsam.artifacts.exports import export_frozen_record, read_export_config, resolve_frozen_files
from vrpsam.modeling.vrp_sam import VRPSAM, build_vrp_sam
from vrpsam.modeling.weights import WeightFileError, load_strict

ENCODER_PREFIX = "model.encoder."


def read_training_checkpoint(path: str | Path) -> dict:
    """A ``vrpsam-train`` checkpoint, loaded without unpickling arbitrary objects.

    Raises:
        FileNotFoundError: no such file.
        WeightFileError: the file is not a readable checkpoint (truncated, corrupt, another
            program's file) or not a vrpsam-train checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}; pass ckpt_path=RUN/checkpoints/best.ckpt of a "
            "vrpsam-train run"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        # torch's own message advises weights_only=False, i.e. running code from the file: never
        # pass that on for a file that may come from anywhere.
        kind = "holds objects other than tensors" if isinstance(err, pickle.UnpicklingError) else (
            "is truncated or corrupt")  # fmt: skip
        raise WeightFileError(
            f"cannot read checkpoint {path}: the file {kind} ({type(err).__name__}). Use a "
            "checkpoints/best.ckpt or last.ckpt written by vrpsam-train (copy it again if it was "
            "transferred), or retrain."
        ) from None
    if not isinstance(checkpoint, dict) or "vrpsam" not in checkpoint:
        raise WeightFileError(
            f"{path} is not a vrpsam-train checkpoint (no 'vrpsam' section); for the authors' "
            f"best_model.pt use vrpsam.load_official_checkpoint"
        )
    if "state_dict" not in checkpoint:
        raise WeightFileError(f"{path} holds no weights ('state_dict'): retrain or use another")
    return checkpoint


def checkpoint_frozen_record(info: dict) -> dict:
    """The checkpoint's record of its frozen files (older checkpoints: the paths only)."""
    return info.get("frozen_weights") or frozen.record_from_paths(info)


def load_trained_model(
    *,
    ckpt_path: str | Path | None = None,
    export_dir: str | Path | None = None,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    expect: dict | None = None,
    sam_image_encoder: bool = True,
    random_frozen_weights: bool = False,
    check_frozen_weights: bool = True,
) -> tuple[VRPSAM, dict]:
    """The trained model of a checkpoint or export, and what it was trained on.

    Args:
        ckpt_path: a ``vrpsam-train`` checkpoint; or
        export_dir: a ``vrpsam-export`` folder.
        sam_checkpoint, backbone_checkpoint: frozen weight files (default: those recorded).
        expect: architecture keys the caller's config asks for (``backbone``, ``sam``, ...; None
            values mean "whatever was trained"); a mismatch is refused with a clear message.
        sam_image_encoder: False when image embeddings come from a feature cache.
        random_frozen_weights: random frozen weights where a recorded file is missing.
        check_frozen_weights: refuse a given frozen file whose SHA-256 differs from the record.

    Returns:
        (model in eval mode, info): ``info`` holds the run info (dataset, fold, image size, ...),
        ``protocol`` (None for checkpoints of older versions), ``frozen_weights`` (the record)
        and ``sam_checkpoint`` / ``backbone_checkpoint`` (the files used, None for random).
    """
    if (ckpt_path is None) == (export_dir is None):
        raise ValueError("give exactly one of ckpt_path (a training checkpoint) or export_dir")
    expect = {k: v for k, v in (expect or {}).items() if v is not None}
    given = dict(
        sam_checkpoint=sam_checkpoint,
        backbone_checkpoint=backbone_checkpoint,
        random_frozen_weights=random_frozen_weights,
        check_hash=check_frozen_weights,
    )
    if export_dir is not None:
        from vrpsam.artifacts.exports import load_export

        config = read_export_config(export_dir)
        check_same_architecture(config["model"], {**config["model"], **expect}, "export")
        info = dict(config.get("training", {}))
        record = export_frozen_record(config)
        files = resolve_frozen_files(record, source=f"export {export_dir}", **given)
        # The files are resolved (and hashed) once, above.
        model = load_export(
            export_dir,
            **files,
            sam_image_encoder=sam_image_encoder,
            check_frozen_weights=False,
            random_frozen_weights=True,
        )
        info.update(files, protocol=config.get("protocol"), frozen_weights=record)
        return model, info
    checkpoint = read_training_checkpoint(ckpt_path)
    section = checkpoint["vrpsam"]
    spec = section["build_spec"]
    info = dict(section.get("run_info", {}))
    check_same_architecture(spec, {**spec, **expect}, "checkpoint")
    record = checkpoint_frozen_record(info)
    files = resolve_frozen_files(record, source=f"checkpoint {ckpt_path}", **given)
    model = build_vrp_sam(**spec, **files, sam_image_encoder=sam_image_encoder)
    encoder = {
        k[len(ENCODER_PREFIX) :]: v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith(ENCODER_PREFIX)
    }
    load_strict(model.encoder, encoder, what=f"VRP encoder of checkpoint {ckpt_path}")
    info.update(files, protocol=section.get("protocol"), frozen_weights=record)
    return model.eval(), info
