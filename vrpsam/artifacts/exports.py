"""Exports: learnable weights as ``model.safetensors`` plus a ``config.json`` to rebuild around.

An export holds only the VRP encoder (~6 MB); the frozen SAM and backbone come from their own files
at load time. ``config.json`` records the architecture (:attr:`VRPSAM.build_spec`), the protocol
the model was trained under (every switch), how it was trained (dataset, image size, ...), its
metrics, and the frozen weight files it was trained on (path, name, SHA-256; see
:mod:`vrpsam.artifacts.frozen_weights`), so that loading it onto other frozen weights, or onto
none, is refused instead of silently producing garbage.
"""

from __future__ import annotations

import json
from pathlib import Path

from vrpsam import __version__
from vrpsam.artifacts import frozen_weights as frozen
from vrpsam.artifacts.atomic import atomic_write, atomic_write_json
from vrpsam.modeling.vrp_sam import VRPSAM, build_vrp_sam
from vrpsam.modeling.weights import WeightFileError, load_strict

EXPORT_FORMAT = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_KEYS = {
    "sam": "sam_checkpoint=PATH (vrpsam-predict, VRPSAMPredictor.from_export, load_export) or "
    "model.sam_checkpoint=PATH (vrpsam-eval)",
    "backbone": "backbone_checkpoint=PATH (vrpsam-predict, VRPSAMPredictor.from_export, "
    "load_export) or model.backbone_checkpoint=PATH (vrpsam-eval)",
}


def export_model(
    model: VRPSAM,
    out_dir: str | Path,
    *,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    frozen_record: dict | None = None,
    protocol: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` (each atomically).

    Args:
        model: a model built by :func:`build_vrp_sam` (it carries its ``build_spec``).
        sam_checkpoint, backbone_checkpoint: the frozen weight files it was trained with (hashed
            here unless ``frozen_record`` is given).
        frozen_record: the training run's record of its frozen files
            (:func:`vrpsam.artifacts.frozen_weights.record`).
        protocol: the protocol it was trained under
            (:meth:`vrpsam.engine.protocol.Protocol.as_dict`).
        training: what it was trained on (dataset, fold, shot, image size, ...).
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
        "protocol": protocol,
        "frozen_weights": frozen_record or frozen.record(sam_checkpoint, backbone_checkpoint),
        "learnable_parameters": sum(v.numel() for v in state.values()),
        "training": training or {},
        "metrics": metrics or {},
    }
    atomic_write_json(out_dir / CONFIG_FILE, config, indent=2)
    return out_dir


def read_export_config(export_dir: str | Path) -> dict:
    """The ``config.json`` of an export, checked for presence, syntax and format."""
    export_dir = Path(export_dir)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (export_dir / name).is_file():
            raise FileNotFoundError(
                f"export folder {export_dir} has no {name}; create one with "
                f"`vrpsam-export ckpt_path=... out_dir=...`"
            )
    path = export_dir / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightFileError(
            f"{path} is not valid JSON ({err}): the export is incomplete or damaged; export the "
            "checkpoint again with `vrpsam-export ckpt_path=... out_dir=...`"
        ) from None
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise WeightFileError(
            f"{path}: export format {found!r} is not {EXPORT_FORMAT}; export the checkpoint "
            "again with this vrpsam version"
        )
    return config


def export_frozen_record(config: dict) -> dict:
    """The export's record of its frozen files; exports of older versions recorded no path, which
    is then taken from their training info."""
    record = config.get("frozen_weights") or {}
    training = config.get("training", {})
    out: dict[str, dict | None] = {}
    for kind in frozen.KINDS:
        entry = record.get(kind)
        out[kind] = None if entry is None else {
            "path": entry.get("path") or training.get(f"{kind}_checkpoint"),
            "file": entry["file"],
            "sha256": entry.get("sha256"),
        }  # fmt: skip
    return out


def load_export(
    export_dir: str | Path,
    *,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    backbone: str | None = None,
    check_frozen_weights: bool = True,
    sam_image_encoder: bool = True,
    random_frozen_weights: bool = False,
) -> VRPSAM:
    """Rebuild VRP-SAM from an export around the frozen weight files it was trained with.

    Args:
        export_dir: folder with ``model.safetensors`` and ``config.json``.
        sam_checkpoint, backbone_checkpoint: frozen weight files; None takes the recorded file when
            it still exists with the same SHA-256, and refuses when it does not.
        backbone: if given, the backbone the caller expects; an export of another one is refused.
        check_frozen_weights: compare given files' SHA-256 with the ones recorded at training.
        sam_image_encoder: False when image embeddings come from a feature cache.
        random_frozen_weights: build random frozen weights where a recorded file is missing
            (meaningless masks; for tests of the plumbing only).

    Raises:
        FrozenWeightsError: a recorded frozen file is neither given nor found (names it and the
            argument to pass).
        WeightFileError: a given file is not the recorded one, or the export is damaged.
    """
    from safetensors import SafetensorError
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
    files = resolve_frozen_files(
        export_frozen_record(config),
        sam_checkpoint=sam_checkpoint,
        backbone_checkpoint=backbone_checkpoint,
        source=f"export {export_dir}",
        random_frozen_weights=random_frozen_weights,
        check_hash=check_frozen_weights,
    )
    model = build_vrp_sam(**spec, **files, sam_image_encoder=sam_image_encoder)
    try:
        state = load_file(str(export_dir / WEIGHTS_FILE), device="cpu")
    except (SafetensorError, OSError) as err:
        raise WeightFileError(
            f"cannot read {export_dir / WEIGHTS_FILE} ({err}): the export is incomplete or "
            "damaged; export the checkpoint again"
        ) from None
    load_strict(model.encoder, state, what=f"export {export_dir}")
    return model.eval()


def resolve_frozen_files(
    record: dict,
    *,
    sam_checkpoint: str | Path | None,
    backbone_checkpoint: str | Path | None,
    source: str,
    random_frozen_weights: bool = False,
    check_hash: bool = True,
) -> dict[str, str | None]:
    """``{"sam_checkpoint": ..., "backbone_checkpoint": ...}`` to build with (see
    :func:`vrpsam.artifacts.frozen_weights.resolve`)."""
    given = {"sam": sam_checkpoint, "backbone": backbone_checkpoint}
    return {
        f"{kind}_checkpoint": frozen.resolve(
            kind,
            given=given[kind],
            recorded=record.get(kind),
            source=source,
            keys=_KEYS[kind],
            random_frozen_weights=random_frozen_weights,
            check_hash=check_hash,
        )
        for kind in frozen.KINDS
    }


def export_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    *,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    random_frozen_weights: bool = False,
) -> Path:
    """Export a ``vrpsam-train`` checkpoint into ``out_dir`` (what ``vrpsam-export`` runs).

    The export carries the checkpoint's protocol, training info and frozen-file record, and the
    run's ``metrics.json`` figures when the checkpoint sits in its run folder; the frozen files
    must be found (given, or at their recorded paths) so that the record is checked.
    """
    from vrpsam.artifacts.checkpoints import load_trained_model

    model, info = load_trained_model(
        ckpt_path=ckpt_path,
        sam_checkpoint=sam_checkpoint,
        backbone_checkpoint=backbone_checkpoint,
        random_frozen_weights=random_frozen_weights,
    )
    metrics_file = Path(ckpt_path).resolve().parent.parent / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    training = {k: v for k, v in info.items() if k not in ("protocol", "frozen_weights")}
    return export_model(
        model,
        out_dir,
        frozen_record=info.get("frozen_weights"),
        protocol=info.get("protocol"),
        training={**training, "checkpoint": str(ckpt_path)},
        metrics={"val_best": metrics.get("val_best"), "test": metrics.get("test")},
    )
