"""``vrpsam-eval``: a method on the fixed test episodes of one fold (:func:`evaluate` + Hydra main).

    vrpsam-eval ckpt_path=RUN/checkpoints/best.ckpt data.fold=0 eval.shot=1 eval.annotation=mask
    vrpsam-eval method=persam model.sam=vit_h model.sam_checkpoint=sam_vit_h_4b8939.pth data.fold=0

``method`` is ``vrpsam`` (a trained checkpoint or export) or a baseline (``gpsam``, ``persam``,
``persam_f``, ``matcher``; see :mod:`vrpsam.baselines`): every method reads the same fixed episode
list and is scored by the same metric.

Writes ``eval.json`` (``miou``, ``fbiou``, ``per_class_iou``, ``episodes``, ``fold``, ``shot``,
``annotation``, ``seed`` and more; percent), ``eval.md`` and ``overlays.png`` into the run folder;
the last printed line is ``mIoU <x> FB-IoU <y>``. A list of seeds (``eval.seed=[0,1,2,3,4]``) gives
mean ± std over seeds, each seed with its own fixed episode list.
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, ListConfig, OmegaConf

from vrpsam.baselines.harness import MethodModule
from vrpsam.baselines.registry import BASELINES, build_baseline
from vrpsam.cache.run import model_overrides, open_caches
from vrpsam.checkpoints import load_trained_model
from vrpsam.data.folds import check_fold
from vrpsam.fileio import atomic_write, atomic_write_json, atomic_write_text
from vrpsam.lit_module import VRPSAMModule
from vrpsam.reports import eval_markdown, plot_overlays
from vrpsam.runtime import episode_list_path
from vrpsam.train import CONFIG_PATH

METHODS = ("vrpsam", *BASELINES)


class EvalRecorder(L.Callback):
    """Keeps rank 0's test results and overlay episodes where the caller can read them, also
    when the test ran in spawned processes (``strategy=ddp_spawn``): it writes them to files."""

    def __init__(self, out_dir: Path, seed: int) -> None:
        self.out_dir, self.seed = out_dir, seed

    def on_test_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        import torch

        atomic_write_json(self.out_dir / f".seed{self.seed}.json", pl_module.results["test"])
        atomic_write(self.out_dir / f".seed{self.seed}.overlays.pt",
                     lambda tmp: torch.save(pl_module.overlays, tmp))  # fmt: skip


def _seeds(value: Any) -> list[int]:
    return [int(s) for s in value] if isinstance(value, list | tuple | ListConfig) else [int(value)]


def build_method(cfg: DictConfig):
    """(model, info) for the configured method."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; available: {', '.join(METHODS)}")
    if cfg.method != "vrpsam":
        settings = cfg.get("baselines", {}).get(cfg.method) or {}
        plain = OmegaConf.to_container(settings, resolve=True) if settings else {}
        return build_baseline(cfg), {"training_free": True, "settings": plain}
    if not cfg.get("ckpt_path") and not cfg.get("export_dir"):
        if cfg.model.get("backbone") is None or cfg.model.get("sam") is None:
            raise ValueError(
                "vrpsam-eval needs ckpt_path=... (a training checkpoint) or export_dir=..., or a "
                "model from the config (experiment=... or model.backbone=... model.sam=...) to "
                "evaluate untrained"
            )
        warnings.warn("no ckpt_path/export_dir: evaluating an untrained VRP encoder", stacklevel=2)
        model = hydra.utils.instantiate(cfg.model, **model_overrides(cfg))
        return model.eval(), {"untrained": True}
    expect = {"backbone": cfg.model.get("backbone"), "sam": cfg.model.get("sam")}
    return load_trained_model(
        ckpt_path=cfg.get("ckpt_path"),
        export_dir=cfg.get("export_dir"),
        sam_checkpoint=cfg.model.get("sam_checkpoint"),
        backbone_checkpoint=cfg.model.get("backbone_checkpoint"),
        expect=expect,
        **model_overrides(cfg),
    )


def build_eval_module(cfg: DictConfig, model, seed: int) -> L.LightningModule:
    """The Lightning module that tests ``model`` (VRP-SAM or a baseline) on one seed."""
    if cfg.method != "vrpsam":
        return MethodModule(
            method=model, annotation=cfg.eval.annotation, seed=seed, num_overlays=cfg.eval.overlays
        )
    return VRPSAMModule(
        model=model,
        optimizer=None,
        loss_ignore_index=model.switches.loss_ignore_index,
        score_original_size=model.switches.score_original_size,
        cache_features=cfg.get("cache_features", "none"),
        feature_caches=open_caches(cfg),
        compile=cfg.get("compile", "none"),
        num_overlays=cfg.eval.overlays,
    )


def evaluate_seed(cfg: DictConfig, model, seed: int, out: Path) -> tuple[dict, float]:
    """Test one seed's episode list; returns (results in percent, seconds per episode)."""
    data = hydra.utils.instantiate(
        cfg.data,
        shot=cfg.eval.shot,
        annotation=cfg.eval.annotation,
        batch_size=cfg.eval.batch_size,  # per process: metrics do not depend on it
        test_seed=seed,
        test_episodes=cfg.eval.episodes,
        test_episode_list=str(
            episode_list_path(cfg.data, cfg.paths.output_dir, seed=seed, n=cfg.eval.episodes)
        ),
    )
    module = build_eval_module(cfg, model, seed)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[EvalRecorder(out, seed)],
        enable_checkpointing=False,
        # PerSAM-F fits per episode: autograd must stay available inside the test loop.
        inference_mode=cfg.method == "vrpsam",
    )
    start = time.perf_counter()
    trainer.test(module, datamodule=data, verbose=False)
    seconds = time.perf_counter() - start
    import json

    result = json.loads((out / f".seed{seed}.json").read_text())
    return result, seconds / max(result["episodes"], 1)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate as the config says and write the reports; returns the ``eval.json`` content."""
    import torch

    check_fold(cfg.data.fold)
    out = Path(cfg.paths.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    model, info = build_method(cfg)
    seeds = _seeds(cfg.eval.seed)
    runs = [evaluate_seed(cfg, model, seed, out) for seed in seeds]
    mious = [r["miou"] for r, _ in runs]
    fbious = [r["fbiou"] for r, _ in runs]
    per_class = [
        None if any(r["per_class_iou"][i] is None for r, _ in runs)
        else statistics.fmean(r["per_class_iou"][i] for r, _ in runs)
        for i in range(len(runs[0][0]["class_ids"]))
    ]  # fmt: skip
    result = {
        "method": cfg.method,
        "dataset": cfg.data.dataset,
        "fold": int(cfg.data.fold),
        "shot": int(cfg.eval.shot),
        "annotation": cfg.eval.annotation,
        "seed": seeds[0] if len(seeds) == 1 else seeds,
        "seeds": seeds,
        "episodes": runs[0][0]["episodes"],
        "miou": statistics.fmean(mious),
        "miou_std": statistics.stdev(mious) if len(mious) > 1 else 0.0,
        "fbiou": statistics.fmean(fbious),
        "fbiou_std": statistics.stdev(fbious) if len(fbious) > 1 else 0.0,
        "per_seed": [
            {"seed": s, "miou": r["miou"], "fbiou": r["fbiou"]}
            for s, (r, _) in zip(seeds, runs, strict=True)
        ],
        "class_ids": runs[0][0]["class_ids"],
        "per_class_iou": per_class,
        "seconds_per_episode": statistics.fmean(t for _, t in runs),
        # Baselines are always scored at the targets' original size (the literature's way).
        "score_original_size": cfg.method != "vrpsam" or model.switches.score_original_size,
        "units": "percent",
        "checkpoint": str(cfg.get("ckpt_path") or cfg.get("export_dir"))
        if cfg.method == "vrpsam"
        else None,
        "trained_on": info,
    }
    atomic_write_json(out / "eval.json", result, indent=2)
    atomic_write_text(out / "eval.md", eval_markdown(result))
    overlays = torch.load(out / f".seed{seeds[0]}.overlays.pt", weights_only=True)
    if overlays:
        atomic_write(out / "overlays.png", lambda tmp: plot_overlays(overlays, tmp))
    for seed in seeds:
        for suffix in (".json", ".overlays.pt"):
            (out / f".seed{seed}{suffix}").unlink(missing_ok=True)
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> None:
    result = evaluate(cfg)
    print(f"wrote {Path(cfg.paths.run_dir) / 'eval.json'}")
    print(f"mIoU {result['miou']:.2f} FB-IoU {result['fbiou']:.2f}")


if __name__ == "__main__":
    main()
