"""``vrpsam-train``: episodic training of one fold (a pure :func:`train` plus a thin Hydra main).

    vrpsam-train experiment=pascal5i_resnet50 data.fold=0 data.root=/data/VOC2012 trainer=ddp

Writes into the run folder (``hydra.run.dir``): ``checkpoints/{best,last}.ckpt`` (learnable
weights, optimizer and scheduler state only), ``metrics.json``, ``training_curve.png``, the resolved
config (``.hydra/``) and the logger's files (CSV by default). ``ckpt_path=last`` (with the same
``hydra.run.dir``) or ``ckpt_path=PATH`` resumes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from vrpsam.cache.run import model_overrides, open_caches
from vrpsam.callbacks import RunReport
from vrpsam.data.folds import check_fold
from vrpsam.lit_module import VRPSAMModule
from vrpsam.runtime import episode_list_path, per_process_batch, world_size

CONFIG_PATH = str(Path(__file__).resolve().parent.parent / "conf")


def build_module(cfg: DictConfig, model, feature_caches: dict | None = None) -> VRPSAMModule:
    """The LightningModule of a training config around an already built model."""
    switches = model.switches
    return VRPSAMModule(
        feature_caches=feature_caches,
        model=model,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        loss_ignore_index=switches.loss_ignore_index,
        score_original_size=switches.score_original_size,
        cache_features=cfg.get("cache_features", "none"),
        compile=cfg.get("compile", "none"),
        run_info={
            "dataset": cfg.data.dataset,
            "root": str(cfg.data.root),
            "fold": cfg.data.fold,
            "shot": cfg.data.shot,
            "annotation": cfg.data.annotation,
            "image_size": cfg.data.image_size,
            "seed": cfg.seed,
            "sam_checkpoint": cfg.model.get("sam_checkpoint"),
            "backbone_checkpoint": cfg.model.get("backbone_checkpoint"),
        },
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
            range, a checkpoint of another architecture, ...
    """
    check_fold(cfg.data.fold)  # before anything is built, so the message is not wrapped
    L.seed_everything(cfg.seed, workers=True)
    processes = world_size(cfg.trainer)
    batch = per_process_batch(cfg.total_batch_size, processes)
    out = Path(cfg.paths.run_dir)
    caches = open_caches(cfg)  # before building: a mismatching cache fails fast
    model = hydra.utils.instantiate(cfg.model, **model_overrides(cfg))
    test_list = episode_list_path(
        cfg.data, cfg.paths.output_dir, seed=cfg.seed, n=cfg.data.test_episodes
    )
    datamodule = hydra.utils.instantiate(
        cfg.data,
        batch_size=batch,
        test_seed=cfg.seed,
        test_episode_list=str(test_list),
        val_split=model.switches.select_on,
    )
    module = build_module(cfg, model, caches)
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate_loggers(cfg)
    )
    report = next((c for c in callbacks if isinstance(c, RunReport)), None)
    if cfg.get("test_before_training") and not cfg.get("ckpt_path"):
        if report is not None:
            report.phase = "before"
        trainer.test(module, datamodule=datamodule)
        if report is not None:
            report.phase = "after"
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    if cfg.get("test_after_training"):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
    metrics_file = out / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule, "run_dir": out}


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> None:
    metrics, objects = train(cfg)
    out = objects["run_dir"]
    best = (metrics.get("val_best") or {}).get("miou")
    test = (metrics.get("test") or {}).get("miou")
    print(f"run folder: {out}")
    if best is not None:
        print(f"best val mIoU {best:.2f}")
    if test is not None:
        print(f"test mIoU {test:.2f}")
    OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)


if __name__ == "__main__":
    main()
