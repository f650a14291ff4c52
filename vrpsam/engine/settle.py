"""An evaluation's settings: what the config leaves open comes from the checkpoint.

A checkpoint or export records what it was trained with (:mod:`vrpsam.engine.protocol` switches,
image size, interpolation, reference annotation). :func:`settle` fills the evaluation config's
nulls from that record and collects, in one warning, the values given on the command line that
contradict it (they are honoured).
"""

from __future__ import annotations

import copy
import functools
import warnings
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from vrpsam.conf import CONFIG_DIR
from vrpsam.engine.protocol import Protocol, evaluation_protocol

MODEL_SIDE = ("image_size", "interpolation")
"""Data settings a model is trained with (eval.yaml leaves them null to take the checkpoint's)."""


@functools.cache
def data_defaults() -> DictConfig:
    """``conf/data/base.yaml``: the fallbacks for models that record no data settings, and for
    training-free methods (eval.yaml nulls these keys, so the composed config no longer has them).
    """
    return OmegaConf.load(Path(CONFIG_DIR) / "data" / "base.yaml")


def settle(cfg: DictConfig, info: dict) -> tuple[DictConfig, Protocol]:
    """A copy of ``cfg`` with every null filled from the checkpoint's record ``info`` (protocol,
    image size, interpolation, annotation), and the protocol in effect.

    Args:
        cfg: an evaluation config (``conf/eval.yaml``).
        info: what the method was trained on (empty or ``training_free`` for baselines).
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
        if cfg.eval.get("annotation") is None:
            cfg.eval.annotation = info.get("annotation") or data_defaults().annotation
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
