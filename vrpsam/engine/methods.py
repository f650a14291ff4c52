"""The evaluated method as ``conf/method/<name>.yaml`` builds it: a trained (or untrained) VRP-SAM
with what it was trained on, or a training-free baseline (:mod:`vrpsam.baselines.builders`)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import hydra
from omegaconf import OmegaConf

from vrpsam.artifacts.checkpoints import load_trained_model
from vrpsam.baselines.base import FewShotMethod
from vrpsam.modeling.vrp_sam import VRPSAM


@dataclass
class TrainedVRPSAM:
    """VRP-SAM to evaluate: ``model`` (None: build the untrained one from the config, once the
    protocol is settled) and what it was trained on (``info``: run info, protocol, frozen files).
    """

    model: VRPSAM | None
    info: dict = field(default_factory=dict)


def load_vrpsam(
    *,
    name: str,
    model: Mapping,
    ckpt_path: str | None = None,
    export_dir: str | None = None,
    random_frozen_weights: bool = False,
    check_frozen_weights: bool = True,
    sam_image_encoder: bool = True,
) -> TrainedVRPSAM:
    """The ``vrpsam`` method: a checkpoint or export, or the config's untrained model.

    Args:
        name: the method's name (``vrpsam``).
        model: the run's model config; its ``backbone`` and ``sam`` (when set) are the
            architecture expected of a checkpoint, its weight files override the recorded ones.
        ckpt_path, export_dir: a ``vrpsam-train`` checkpoint or a ``vrpsam-export`` folder.
        random_frozen_weights: random SAM/backbone where the recorded files are missing.
        check_frozen_weights: false accepts given frozen files whose SHA-256 differs from the
            training record (the encoder was not trained for them).
        sam_image_encoder: False when image embeddings come from a feature cache.
    """
    del name
    if not ckpt_path and not export_dir:
        if model.get("backbone") is None or model.get("sam") is None:
            raise ValueError(
                "vrpsam-eval needs ckpt_path=... (a training checkpoint) or export_dir=..., or a "
                "model from the config (experiment=... or model.backbone=... model.sam=...) to "
                "evaluate untrained"
            )
        warnings.warn("no ckpt_path/export_dir: evaluating an untrained VRP encoder", stacklevel=2)
        return TrainedVRPSAM(None, {"untrained": True})
    loaded, info = load_trained_model(
        ckpt_path=ckpt_path or None,
        export_dir=export_dir or None,
        sam_checkpoint=model.get("sam_checkpoint"),
        backbone_checkpoint=model.get("backbone_checkpoint"),
        expect={"backbone": model.get("backbone"), "sam": model.get("sam")},
        random_frozen_weights=random_frozen_weights,
        check_frozen_weights=check_frozen_weights,
        sam_image_encoder=sam_image_encoder,
    )
    return TrainedVRPSAM(loaded, info)


def build_method(method_cfg: Any, **runtime: Any) -> TrainedVRPSAM | FewShotMethod:
    """Instantiate ``cfg.method`` (``runtime``: builder arguments decided by the run, such as
    skipping SAM's image encoder when a feature cache is read)."""
    from hydra.errors import InstantiationException

    if method_cfg.get("_target_") is None:
        raise ValueError("method must be a config group choice: method=vrpsam|gpsam|persam|...")
    try:
        return hydra.utils.instantiate(method_cfg, **runtime)
    except InstantiationException as err:
        # The builders' own messages name the problem and the fix: not Hydra's wrapper.
        if err.__cause__ is not None:
            raise err.__cause__ from None
        raise


def method_settings(method_cfg: Any) -> dict:
    """The method's own settings for reports (the shared frozen model and wiring left out)."""
    plain = OmegaConf.to_container(method_cfg, resolve=True)
    skip = {"_target_", "_recursive_", "frozen", "model", "name"}
    return {k: v for k, v in plain.items() if k not in skip}


def run_record(cfg: Any, method: Any, protocol: Any) -> dict:
    """What every ``eval.json`` says about the run besides its scores: the protocol (name, every
    switch, the switches that differ from the named preset), the units, and the checkpoint and
    what the model was trained on (not its protocol, given above), or the settings of a
    training-free method, and the frozen parts run on random weights instead of their files."""
    from vrpsam.conf import CONFIG_DIR
    from vrpsam.engine.protocol import preset_changes

    trained = isinstance(method, TrainedVRPSAM)
    info = method.info if trained else {}
    return {
        "protocol": protocol.name,
        "switches": protocol.switches(),
        "protocol_changes": preset_changes(protocol, cfg.data.dataset, CONFIG_DIR),
        "units": "percent",
        # None for a training-free method and for an untrained VRP-SAM.
        "checkpoint": str(path)
        if trained and (path := cfg.get("ckpt_path") or cfg.get("export_dir"))
        else None,
        "trained_on": {k: v for k, v in info.items() if k != "protocol"}
        if trained
        else {"training_free": True, "settings": method_settings(cfg.method)},
        # trained_on lists the files the model was trained on; this says which were not used.
        "random_frozen_weights": random_frozen_parts(info),
    }


def random_frozen_parts(info: Mapping) -> list[str]:
    """The frozen parts (``sam``, ``backbone``) that run on random weights in place of the files
    the model was trained on (``random_frozen_weights=true``): its figures then mean nothing."""
    record = info.get("frozen_weights") or {}
    return [
        kind
        for kind in ("sam", "backbone")
        if record.get(kind) is not None and info.get(f"{kind}_checkpoint") is None
    ]
