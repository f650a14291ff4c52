"""An evaluation's settings: what the config leaves open comes from the checkpoint.

A checkpoint or export records what it was trained with (:mod:`vrpsam.engine.protocol` switches,
image size, interpolation, reference annotation, and what shapes the episodes: the dataset folder
and the reader's options such as ``min_pixels`` / ``min_area`` / ``lists``). :func:`settle` fills
the evaluation config's open values from that record and collects, in one warning, the values
given on the command line that contradict it (they are honoured).

"Open" is a null for the model side (``eval.yaml`` nulls ``data.image_size``, ...). The episode
side keeps the data config's values, so only the command line tells an override from a default:
``vrpsam-eval`` passes its overrides (:func:`given_keys`); without them every config value counts
as given.
"""

from __future__ import annotations

import copy
import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from vrpsam.conf import CONFIG_DIR, as_dict
from vrpsam.engine.protocol import Protocol, evaluation_protocol

MODEL_SIDE = ("image_size", "interpolation")
"""Data settings a model is trained with (eval.yaml leaves them null to take the checkpoint's)."""

OPTIONS_KEY = "data.source_options"


@functools.cache
def data_defaults() -> DictConfig:
    """``conf/data/base.yaml``: the fallbacks for models that record no data settings, and for
    training-free methods (eval.yaml nulls these keys, so the composed config no longer has them).
    """
    return OmegaConf.load(Path(CONFIG_DIR) / "data" / "base.yaml")


def given_keys(overrides: Sequence[str] | None) -> set[str] | None:
    """The config keys a command line sets (``data.root``, ``data.source_options.min_pixels``,
    ...; ``+``/``++`` forms included), or None when the command line is unknown."""
    if overrides is None:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return {o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides))}


def settle(
    cfg: DictConfig, info: dict, overrides: Sequence[str] | None = None
) -> tuple[DictConfig, Protocol]:
    """A copy of ``cfg`` with every open value filled from the checkpoint's record ``info``
    (protocol, image size, interpolation, annotation, dataset folder and reader options), and the
    protocol in effect.

    Args:
        cfg: an evaluation config (``conf/eval.yaml``).
        info: what the method was trained on (empty or ``training_free`` for baselines).
        overrides: the command line's overrides (None: unknown, every config value is given).
    """
    cfg = copy.deepcopy(cfg)
    recorded = info.get("protocol")
    trained = {k: info.get(k) for k in ("dataset", "fold", "image_size", "interpolation")}
    protocol, contradictions = evaluation_protocol(
        cfg.protocol,
        recorded=recorded,
        recorded_dataset=trained["dataset"],
        dataset=cfg.data.dataset,
        config_dir=CONFIG_DIR,
    )
    notes = [f"protocol.{k}: checkpoint {old!r}, this run {new!r}"
             for k, (old, new) in contradictions.items()]  # fmt: skip
    with open_dict(cfg):
        cfg.protocol = protocol.as_dict()
        for key in MODEL_SIDE:
            given, saved = cfg.data.get(key), trained.get(key)
            if given is None:
                cfg.data[key] = saved if saved is not None else data_defaults()[key]
            elif saved is not None and given != saved:
                notes.append(f"data.{key}: checkpoint {saved!r}, this run {given!r}")
        notes += _settle_annotation(cfg, info)
        if trained["dataset"] == cfg.data.dataset:  # another dataset's folder says nothing here
            notes += _settle_episode_side(cfg, info, given_keys(overrides))
        for key in ("dataset", "fold"):
            if trained[key] is not None and cfg.data[key] != trained[key]:
                notes.append(f"data.{key}: trained on {trained[key]!r}, evaluated on "
                             f"{cfg.data[key]!r}")  # fmt: skip
    if recorded is None and info and not info.get("training_free") and not info.get("untrained"):
        notes.append("the checkpoint records no protocol (an older vrpsam): default protocol")
    if notes:
        warnings.warn(
            "evaluating with settings that differ from the checkpoint's (honoured): "
            + "; ".join(notes),
            stacklevel=2,
        )
    return cfg, protocol


def _settle_annotation(cfg: DictConfig, info: dict) -> list[str]:
    """``eval.annotation``: the trained one when not given; a given one that differs is noted."""
    saved, given = info.get("annotation"), cfg.eval.get("annotation")
    if given is None:
        cfg.eval.annotation = saved or data_defaults().annotation
        return []
    if saved and given != saved:
        return [f"eval.annotation: checkpoint {saved!r}, this run {given!r}"]
    return []


def _settle_episode_side(cfg: DictConfig, info: dict, given: set[str] | None) -> list[str]:
    """Restore the checkpoint's dataset folder and reader options where the command line does
    not set them (they decide which classes and images make the episodes); notes for those it
    sets to other values."""
    notes = []
    root = info.get("root")
    if root:
        if given is not None and "data.root" not in given:
            cfg.data.root = _recorded_root(root)
        elif not _same_path(cfg.data.root, root):
            notes.append(f"data.root: checkpoint {root!r}, this run {str(cfg.data.root)!r}")
    saved = info.get("source_options")
    if saved is None:  # checkpoints of older versions record none
        return notes
    current = as_dict(cfg.data.get("source_options"))
    if given is None or OPTIONS_KEY in given:
        chosen = set(current) | set(saved)
    else:
        chosen = {k.split(".")[2] for k in given if k.startswith(OPTIONS_KEY + ".")}
    options = {k: v for k, v in saved.items() if k not in chosen}
    for key in sorted(chosen):
        if key in current:
            options[key] = current[key]
        if key in saved and current.get(key) != saved[key]:
            shown = repr(current[key]) if key in current else "unset"
            notes.append(f"{OPTIONS_KEY}.{key}: checkpoint {saved[key]!r}, this run {shown}")
    cfg.data.source_options = options
    return notes


def _recorded_root(root: str) -> str:
    """The checkpoint's dataset folder, or an error naming ``data.root`` when it is gone."""
    if not Path(root).exists():
        raise FileNotFoundError(
            f"the checkpoint was trained on the dataset at {root}, which no longer exists: "
            f"pass the dataset folder with data.root=/path/to/{Path(root).name}"
        )
    return root


def _same_path(a: Any, b: Any) -> bool:
    return os.path.abspath(str(a)) == os.path.abspath(str(b))
