"""Exports: learnable weights as ``model.safetensors`` plus a ``config.json`` to rebuild around.

An export holds only the VRP encoder (~6 MB); the frozen SAM and backbone come from their own files
at load time. ``config.json`` records the architecture (:attr:`VRPSAM.build_spec`), how it was
trained, its metrics, and fingerprints (SHA-256) of the frozen weight files it was trained on, so
that loading it onto other frozen weights is refused instead of silently producing garbage.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from vrpsam import __version__
from vrpsam.fileio import atomic_write, atomic_write_json, sha256_file
from vrpsam.modeling.vrp_sam import VRPSAM, build_vrp_sam
from vrpsam.modeling.weights import WeightFileError, load_strict

EXPORT_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def frozen_fingerprint(path: str | Path | None) -> dict | None:
    """Name and SHA-256 of a frozen weight file; None for random weights."""
    if path is None:
        return None
    return {"file": Path(path).name, "sha256": sha256_file(path)}


def export_model(
    model: VRPSAM,
    out_dir: str | Path,
    *,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` (each atomically).

    Args:
        model: a model built by :func:`build_vrp_sam` (it carries its ``build_spec``).
        sam_checkpoint, backbone_checkpoint: the frozen weight files it was trained with.
        training: what it was trained on (dataset, fold, shot, seed, ...).
        metrics: its evaluation results.
    """
    from safetensors.torch import save_file

    if not model.build_spec:
        raise ValueError("the model has no build_spec: build it with vrpsam.build_vrp_sam")
    out_dir = Path(out_dir)
    state = {k: v.detach().contiguous().cpu() for k, v in model.encoder.state_dict().items()}
    atomic_write(out_dir / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp)))
    config = {
        "format": EXPORT_FORMAT,
        "vrpsam_version": __version__,
        "model": model.build_spec,
        "frozen_weights": {
            "sam": frozen_fingerprint(sam_checkpoint),
            "backbone": frozen_fingerprint(backbone_checkpoint),
        },
        "learnable_parameters": sum(v.numel() for v in state.values()),
        "training": training or {},
        "metrics": metrics or {},
    }
    atomic_write_json(out_dir / CONFIG_FILE, config, indent=2)
    return out_dir


def read_export_config(export_dir: str | Path) -> dict:
    """The ``config.json`` of an export, checked for presence and format."""
    export_dir = Path(export_dir)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (export_dir / name).is_file():
            raise FileNotFoundError(
                f"export folder {export_dir} has no {name}; create one with "
                f"`vrpsam-export ckpt_path=... out_dir=...`"
            )
    config = json.loads((export_dir / CONFIG_FILE).read_text())
    if config.get("format") != EXPORT_FORMAT:
        raise ValueError(
            f"{export_dir}: export format {config.get('format')} is not {EXPORT_FORMAT}"
        )
    return config


def _check_frozen(kind: str, recorded: dict | None, given: str | Path | None, strict: bool) -> None:
    if not strict or recorded is None or given is None:
        return
    actual = sha256_file(given)
    if actual != recorded["sha256"]:
        raise WeightFileError(
            f"the export was trained on {kind} weights {recorded['file']} "
            f"(sha256 {recorded['sha256'][:12]}…), but {given} differs (sha256 {actual[:12]}…). "
            f"The VRP encoder only works with the frozen weights it was trained with; pass that "
            f"file, or check_frozen_weights=False to override."
        )


def load_export(
    export_dir: str | Path,
    *,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    backbone: str | None = None,
    check_frozen_weights: bool = True,
    sam_image_encoder: bool = True,
) -> VRPSAM:
    """Rebuild VRP-SAM from an export around the given frozen weight files.

    Args:
        export_dir: folder with ``model.safetensors`` and ``config.json``.
        sam_checkpoint, backbone_checkpoint: frozen weight files (None = random weights).
        backbone: if given, the backbone the caller expects; an export of another one is refused.
        check_frozen_weights: compare the files' SHA-256 with the ones recorded at export.
        sam_image_encoder: False when image embeddings come from a feature cache.
    """
    from safetensors.torch import load_file

    export_dir = Path(export_dir)
    config = read_export_config(export_dir)
    spec = config["model"]
    if backbone is not None and backbone != spec["backbone"]:
        raise ValueError(
            f"export {export_dir} was trained with backbone {spec['backbone']!r}, but "
            f"{backbone!r} was asked for; select model/backbone={spec['backbone']} or use another "
            "export"
        )
    frozen = config.get("frozen_weights", {})
    for kind in ("sam", "backbone"):
        if frozen.get(kind) is None and (sam_checkpoint, backbone_checkpoint)[kind == "backbone"]:
            warnings.warn(
                f"export {export_dir} was trained on a random-weight {kind}; loading it onto a "
                f"weight file gives a model that was never trained for it",
                stacklevel=2,
            )
    _check_frozen("SAM", frozen.get("sam"), sam_checkpoint, check_frozen_weights)
    _check_frozen("backbone", frozen.get("backbone"), backbone_checkpoint, check_frozen_weights)
    model = build_vrp_sam(
        **spec,
        sam_checkpoint=sam_checkpoint,
        backbone_checkpoint=backbone_checkpoint,
        sam_image_encoder=sam_image_encoder,
    )
    state = load_file(str(export_dir / WEIGHTS_FILE), device="cpu")
    load_strict(model.encoder, state, what=f"export {export_dir}")
    return model.eval()
