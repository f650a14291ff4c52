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
from omegaconf import DictConfig

from vrpsam.artifacts import frozen_weights
from vrpsam.cache.run import model_overrides, open_caches
from vrpsam.conf import CONFIG_DIR, as_dict
from vrpsam.data.datamodule import video_training_message
from vrpsam.data.folds import check_fold
from vrpsam.engine.callbacks import RunReport, SaveOnInterrupt, ValidateWhenStopped
from vrpsam.engine.loggers import ResumableCSVLogger
from vrpsam.engine.protocol import Protocol, configured_protocol
from vrpsam.engine.resume import check_same_experiment, resume_checkpoint
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
    source_options = as_dict(data.get("source_options"))
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
        max_steps=step_limit(cfg),
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


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train one fold as the config says; returns (metrics, objects).

    Raises:
        ValueError: a total batch size that the number of processes cannot split, a fold out of
            range, a checkpoint of another architecture, protocol or experiment, an invalid
            switch, ...
        FileNotFoundError: a checkpoint to resume from that does not exist.
    """
    quiet_library_noise()
    # Before anything is built, so that the message is not wrapped.
    if cfg.data.get("video"):
        raise ValueError(video_training_message(cfg.data.dataset))
    check_fold(cfg.data.fold, cfg.data.dataset)
    protocol = configured_protocol(cfg, CONFIG_DIR)
    resume = resume_checkpoint(cfg)
    resumed_step = _check_resumable(resume, run_info(cfg)) if resume else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    batch = per_process_batch(cfg.total_batch_size, world_size(cfg.trainer))
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
    trainer, report = build_trainer(cfg, resumed_step)
    if cfg.get("test_before_training") and not resume:
        if report is not None:
            report.phase = "before"
        trainer.test(module, datamodule=datamodule, verbose=False)
        if report is not None:
            report.phase = "after"
    # Ctrl-C or SIGTERM: SaveOnInterrupt saves the step, RunReport says how to resume.
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    if cfg.get("test_after_training"):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    metrics_file = out / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule, "run_dir": out}


def step_limit(cfg: DictConfig) -> int:
    """``trainer.max_steps`` of a config (-1: no limit)."""
    limit = cfg.trainer.get("max_steps")
    return -1 if limit is None else int(limit)


def build_trainer(cfg: DictConfig, resumed_step: int | None) -> tuple[L.Trainer, RunReport | None]:
    """The Trainer of a training config, and its RunReport callback (None if the config has none).

    Lightning is given no ``max_steps``: it restarts a run with one (its "iteration-based"
    training) from an end-of-epoch checkpoint one epoch off, counting that epoch as unfinished and
    drawing the next epoch's episodes for it. ``ValidateWhenStopped`` stops at the limit instead,
    and the LR schedule's length counts it (``VRPSAMModule(max_steps=...)``).
    """
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    stopper = next((c for c in callbacks if isinstance(c, ValidateWhenStopped)), None)
    if stopper is None:
        stopper = ValidateWhenStopped()
        callbacks.append(stopper)
    stopper.max_steps = step_limit(cfg)
    last = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt"
    callbacks.append(SaveOnInterrupt(path=last))
    loggers = instantiate_loggers(cfg)
    if resumed_step is not None:
        # A resumed run writes into its own checkpoint folder on purpose.
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not")
        for logger in loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.resume_from(resumed_step)
    epochs = cfg.trainer.get("max_epochs")
    if epochs is None and stopper.max_steps >= 0:
        epochs = -1  # what Lightning does for max_steps alone: as many epochs as the steps take
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, max_steps=-1, max_epochs=epochs
    )
    return trainer, next((c for c in callbacks if isinstance(c, RunReport)), None)


def _check_resumable(path: str, info: dict[str, Any]) -> int:
    """Refuse a checkpoint of another experiment (:func:`check_same_experiment`); its step."""
    from vrpsam.artifacts.checkpoints import read_training_checkpoint

    checkpoint = read_training_checkpoint(path)
    check_same_experiment(checkpoint["vrpsam"].get("run_info") or {}, info, path)
    return int(checkpoint.get("global_step", 0))
