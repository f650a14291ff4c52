"""A method on the fixed test episodes of one fold, as a pure function of a composed config.

    vrpsam-eval ckpt_path=RUN/checkpoints/best.ckpt data.fold=0 eval.shot=1
    vrpsam-eval method=persam model.sam=vit_h model.sam_checkpoint=sam_vit_h_4b8939.pth data.fold=0

``method`` is a config group (``conf/method/``): ``vrpsam`` (a trained checkpoint or export) or a
training-free baseline (``gpsam``, ``persam``, ``persam_f``, ``matcher``, ``matcher_small``):
every method reads the same fixed episode list and is scored by the same metric.

A checkpoint or export brings what it was trained with (:func:`~vrpsam.engine.settle.settle`):
the protocol switches, the image size and interpolation, the reference annotation, the frozen
weight files, and what shapes the episodes (the dataset folder ``data.root``, the reader's
``data.source_options``: size threshold, lists). What the command line leaves unset takes those;
a value set on the command line is honoured with one warning that names both values.

Writes into the run folder ``eval.json`` (``miou``, ``fbiou``, ``per_class_iou``,
``classes_scored``, ``episodes``, ``root``, ``source_options``, ``fold``, ``shot``,
``annotation``, ``seed``, ``protocol``, ``switches``, ``random_frozen_weights`` and more;
percent), ``eval.md``, ``overlays.png``, and per seed ``seed<k>/results.json`` and
``seed<k>/overlays.png``. A list of seeds (``eval.seed=[0,1,2,3,4]``)
gives mean ± std over seeds, each seed with its own fixed episode list.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, ListConfig

from vrpsam.artifacts.atomic import atomic_write, atomic_write_json, atomic_write_text
from vrpsam.cache.run import model_overrides, open_caches
from vrpsam.conf import as_dict
from vrpsam.data.datamodule import TEST_SPLITS
from vrpsam.data.folds import check_fold
from vrpsam.engine.method_module import MethodModule
from vrpsam.engine.methods import TrainedVRPSAM, build_method, run_record
from vrpsam.engine.progress import pass_progress
from vrpsam.engine.protocol import Protocol
from vrpsam.engine.runtime import episode_list_path, quiet_library_noise
from vrpsam.engine.seeds import aggregate
from vrpsam.engine.semantic import evaluate_semantic
from vrpsam.engine.settle import settle
from vrpsam.engine.training_module import VRPSAMModule
from vrpsam.engine.video import evaluate_video
from vrpsam.reports.figures import plot_overlays
from vrpsam.reports.tables import eval_markdown


class SeedResults(L.Callback):
    """Writes one seed's results and overlays into ``seed<k>/`` on rank 0, where the caller reads
    them, also when the test ran in spawned processes (``strategy=ddp_spawn``)."""

    def __init__(self, *, folder: Path) -> None:
        self.folder = folder

    def on_test_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        atomic_write_json(self.folder / "results.json", pl_module.results["test"], indent=2)
        if pl_module.overlays:
            atomic_write(self.folder / "overlays.png",
                         lambda tmp: plot_overlays(pl_module.overlays, tmp))  # fmt: skip


def _seeds(value: Any) -> list[int]:
    return [int(s) for s in value] if isinstance(value, list | tuple | ListConfig) else [int(value)]


def build_eval_module(
    cfg: DictConfig, method: Any, protocol: Protocol, seed: int
) -> tuple[L.LightningModule, Any]:
    """The Lightning module that tests ``method`` on one seed, and the method (VRP-SAM built from
    the config when untrained, now that the protocol is settled)."""
    if not isinstance(method, TrainedVRPSAM):
        module = MethodModule(
            method=method,
            annotation=cfg.eval.annotation,
            seed=seed,
            score_original_size=protocol.score_original_size,
            num_overlays=cfg.eval.overlays,
        )
        return module, method
    if method.model is None:
        method.model = hydra.utils.instantiate(cfg.model, **model_overrides(cfg)).eval()
    module = VRPSAMModule(
        model=method.model,
        optimizer=None,
        loss_ignore_index=protocol.loss_ignore_index,
        score_original_size=protocol.score_original_size,
        cache_features=cfg.cache_features,
        feature_caches=open_caches(cfg),
        compile=cfg.compile,
        num_overlays=cfg.eval.overlays,
    )
    return module, method


def evaluate_seed(
    cfg: DictConfig, method: Any, protocol: Protocol, seed: int, folder: Path
) -> tuple[dict, dict]:
    """Test one seed's episode list; returns (results in percent with ``seconds_per_episode``,
    the episode list's meta)."""
    shot = int(cfg.eval.shot)
    split = cfg.eval.get("split", "novel")
    if split not in TEST_SPLITS:
        raise ValueError(
            f"eval.split must be novel or base, got {split!r}: novel tests the fold's test "
            "classes, base 1000 pairs of its training images (VRP-SAM Table 13)"
        )
    trained = isinstance(method, TrainedVRPSAM)
    data = hydra.utils.instantiate(
        cfg.data,
        shot=shot,
        annotation=cfg.eval.annotation,
        # Per process; metrics do not depend on it. A training-free method runs one episode at a
        # time whatever the batch: batches of one make each episode a step of the progress.
        batch_size=cfg.eval.batch_size if trained else 1,
        test_seed=seed,
        test_episodes=cfg.eval.episodes,
        test_episode_list=str(
            episode_list_path(
                cfg.data,
                cfg.paths.output_dir,
                seed=seed,
                n=cfg.eval.episodes,
                shot=shot,
                sampling="balanced" if split == "base" else protocol.test_sampling,
                split=split,
            )
        ),
        test_split=split,
        test_negatives=bool(cfg.eval.get("negatives", False)),
        **protocol.data_options(),
    )
    module, _ = build_eval_module(cfg, method, protocol, seed)
    progress, bar = pass_progress(cfg.trainer, f"{cfg.method.name}, seed {seed}", "episodes")
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[SeedResults(folder=folder), progress],
        enable_checkpointing=False,
        enable_progress_bar=bar,
        # PerSAM-F fits per episode: autograd must stay available inside the test loop.
        inference_mode=trained,
    )
    start = time.perf_counter()
    trainer.test(module, datamodule=data, verbose=False)
    seconds = time.perf_counter() - start
    result = json.loads((folder / "results.json").read_text())
    result["seconds_per_episode"] = seconds / max(result["episodes"], 1)
    atomic_write_json(folder / "results.json", result, indent=2)
    return result, data.test_episode_meta or {}


def evaluate(cfg: DictConfig, overrides: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate as the config says and write the reports; returns the ``eval.json`` content.

    ``overrides`` are the command line's (``vrpsam-eval`` passes Hydra's): what they leave unset
    of the episode side (``data.root``, ``data.source_options``) comes from the checkpoint. None
    (a composed config alone) takes every config value as given.
    """
    quiet_library_noise()
    check_fold(cfg.data.fold, cfg.data.dataset)
    out = Path(cfg.paths.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    method = build_method(cfg.method, **_runtime(cfg))
    info = method.info if isinstance(method, TrainedVRPSAM) else {"training_free": True}
    cfg, protocol = settle(cfg, info, overrides)
    if cfg.data.get("video"):
        return evaluate_video(cfg, method, protocol, out)
    if cfg.get("task", "fewshot") == "semantic":
        return evaluate_semantic(cfg, method, protocol, out)
    seeds = _seeds(cfg.eval.seed)
    runs, meta = [], {}
    for seed in seeds:
        result, seed_meta = evaluate_seed(cfg, method, protocol, seed, out / f"seed{seed}")
        runs.append(result)
        meta = meta or seed_meta
    result = {
        "method": cfg.method.name,
        "dataset": cfg.data.dataset,
        # What shaped the episodes (restored from the checkpoint unless the command line set it).
        "root": str(cfg.data.root),
        "source_options": as_dict(cfg.data.get("source_options")),
        "fold": int(cfg.data.fold),
        "split": cfg.eval.get("split", "novel"),
        "negatives": bool(cfg.eval.get("negatives", False)),
        "shot": int(cfg.eval.shot),
        "annotation": cfg.eval.annotation,
        "image_size": int(cfg.data.image_size),
        # Episodes per step: training-free methods run one at a time, whatever eval.batch_size.
        "batch_size": int(cfg.eval.batch_size) if isinstance(method, TrainedVRPSAM) else 1,
        **aggregate(seeds, runs),
        "classes_skipped": meta.get("classes_skipped", []),
        "score_original_size": protocol.score_original_size,
        **run_record(cfg, method, protocol),
    }
    atomic_write_json(out / "eval.json", result, indent=2)
    atomic_write_text(out / "eval.md", eval_markdown(result))
    first = out / f"seed{seeds[0]}" / "overlays.png"
    if first.is_file():
        shutil.copy(first, out / "overlays.png")
    return result


def _runtime(cfg: DictConfig) -> dict:
    """Builder arguments the run decides: VRP-SAM without SAM's image encoder under a cache."""
    return model_overrides(cfg) if cfg.method.get("name") == "vrpsam" else {}
