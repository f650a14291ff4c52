"""Episodic training of one fold as a pure function of a composed config (``vrpsam-train``).

    vrpsam-train experiment=pascal5i_resnet50 data.fold=0 data.root=/data/VOC2012 trainer=ddp

Writes into the run folder (``hydra.run.dir``): ``checkpoints/{best,last}.ckpt`` (learnable
weights, optimizer and scheduler state, the protocol and what the run trained on), ``metrics.json``,
``training_curve.png``, the resolved config (``.hydra/``) and the logger's files (CSV by default).
``ckpt_path=last`` (with the same ``hydra.run.dir``) or ``ckpt_path=PATH`` resumes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from vrpsam.artifacts import frozen_weights
from vrpsam.cache.run import model_overrides, open_caches
from vrpsam.conf import CONFIG_DIR
from vrpsam.data.datamodule import video_training_message
from vrpsam.data.folds import check_fold
from vrpsam.engine.callbacks import RunReport
from vrpsam.engine.loggers import ResumableCSVLogger
from vrpsam.engine.protocol import Protocol, configured_protocol
from vrpsam.engine.runtime import (
    episode_list_path,
    per_process_batch,
    quiet_library_noise,
    world_size,
)
from vrpsam.engine.training_module import VRPSAMModule


def run_info(cfg: DictConfig) -> dict[str, Any]:
    """What a run trains on, stored in its checkpoints: the data settings an evaluation of the
    checkpoint reuses (image size, interpolation, ...) and the record of the frozen files."""
    data = cfg.data
    source_options = OmegaConf.to_container(data.get("source_options") or {}, resolve=True)
    return {
        "dataset": data.dataset,
        "root": str(data.root),
        "fold": int(data.fold),
        "shot": int(data.shot),
        "annotation": data.annotation,
        "image_size": int(data.image_size),
        "interpolation": data.get("interpolation", "bilinear"),
        "source_options": source_options,
        "seed": int(cfg.seed),
        "sam_checkpoint": cfg.model.get("sam_checkpoint"),
        "backbone_checkpoint": cfg.model.get("backbone_checkpoint"),
        "frozen_weights": frozen_weights.record(
            cfg.model.get("sam_checkpoint"), cfg.model.get("backbone_checkpoint")
        ),
    }


def build_module(
    cfg: DictConfig, model, protocol: Protocol, feature_caches: dict | None = None
) -> VRPSAMModule:
    """The LightningModule of a training config around an already built model."""
    return VRPSAMModule(
        feature_caches=feature_caches,
        model=model,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        loss_ignore_index=protocol.loss_ignore_index,
        score_original_size=protocol.score_original_size,
        cache_features=cfg.cache_features,
        compile=cfg.compile,
        run_info=run_info(cfg),
        protocol=protocol.as_dict(),
    )


def instantiate_loggers(cfg: DictConfig) -> list:
    from hydra.errors import InstantiationException

    loggers = []
    for node in (cfg.get("logger") or {}).values():
        try:
            loggers.append(hydra.utils.instantiate(node))
        except InstantiationException as err:
            # A missing optional package: show our sentence, not Hydra's wrapper.
            if isinstance(err.__cause__, ImportError):
                raise err.__cause__ from None
            raise
    return loggers


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint ``ckpt_path`` names: a path, or ``last`` = this run folder's last.ckpt.

    Raises:
        FileNotFoundError: the checkpoint does not exist (never a silent start from scratch).
    """
    given = cfg.get("ckpt_path")
    if not given:
        return None
    path = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt" if given == "last" else Path(given)
    if not path.is_file():
        hint = (
            "ckpt_path=last resumes the run folder given by hydra.run.dir: pass the folder of "
            "the interrupted run (hydra.run.dir=outputs/train/<its folder>)"
            if given == "last"
            else "pass the checkpoint of the run to resume (RUN/checkpoints/last.ckpt)"
        )
        raise FileNotFoundError(f"no checkpoint to resume at {path}; {hint}")
    return str(path)


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train one fold as the config says; returns (metrics, objects).

    Raises:
        ValueError: a total batch size that the number of processes cannot split, a fold out of
            range, a checkpoint of another architecture or protocol, an invalid switch, ...
        FileNotFoundError: a checkpoint to resume from that does not exist.
    """
    quiet_library_noise()
    # Before anything is built, so that the message is not wrapped.
    if cfg.data.get("video"):
        raise ValueError(video_training_message(cfg.data.dataset))
    check_fold(cfg.data.fold, cfg.data.dataset)
    protocol = configured_protocol(cfg, CONFIG_DIR)
    resume = resume_checkpoint(cfg)
    if resume:  # a resumed run writes into its own checkpoint folder on purpose
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    processes = world_size(cfg.trainer)
    batch = per_process_batch(cfg.total_batch_size, processes)
    out = Path(cfg.paths.run_dir)
    caches = open_caches(cfg)  # before building: a mismatching cache fails fast
    model = hydra.utils.instantiate(cfg.model, **model_overrides(cfg))
    test_list = episode_list_path(
        cfg.data,
        cfg.paths.output_dir,
        seed=cfg.seed,
        n=cfg.data.test_episodes,
        shot=cfg.data.shot,
        sampling=protocol.test_sampling,
    )
    datamodule = hydra.utils.instantiate(
        cfg.data,
        batch_size=batch,
        test_seed=cfg.seed,
        test_episode_list=str(test_list),
        **protocol.data_options(),
    )
    module = build_module(cfg, model, protocol, caches)
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = instantiate_loggers(cfg)
    if resume:
        step = int(_checkpoint_step(resume))
        for logger in loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.resume_from(step)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    report = next((c for c in callbacks if isinstance(c, RunReport)), None)
    if cfg.get("test_before_training") and not resume:
        if report is not None:
            report.phase = "before"
        trainer.test(module, datamodule=datamodule, verbose=False)
        if report is not None:
            report.phase = "after"
    # Ctrl-C: Lightning shuts down and exits; RunReport says how to resume.
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    if cfg.get("test_after_training"):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics_file = out / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule, "run_dir": out}


def _checkpoint_step(path: str) -> int:
    from vrpsam.artifacts.checkpoints import read_training_checkpoint

    return int(read_training_checkpoint(path).get("global_step", 0))
