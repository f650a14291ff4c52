"""``vrpsam-eval``: a method on the fixed test episodes of one fold (:func:`evaluate` + Hydra main).

    vrpsam-eval ckpt_path=RUN/checkpoints/best.ckpt data.fold=0 eval.shot=1
    vrpsam-eval method=persam model.sam=vit_h model.sam_checkpoint=sam_vit_h_4b8939.pth data.fold=0

``method`` is ``vrpsam`` (a trained checkpoint or export) or a baseline (``gpsam``, ``persam``,
``persam_f``, ``matcher``; see :mod:`vrpsam.baselines`): every method reads the same fixed episode
list and is scored by the same metric.

A checkpoint or export brings what it was trained with: the protocol switches (scoring size, test
scribbles, episode rules, ...), the image size and interpolation, the reference annotation, the
frozen weight files. The config's nulls take those; a value set on the command line is honoured
with one warning that names both values.

Writes ``eval.json`` (``miou``, ``fbiou``, ``per_class_iou``, ``classes_scored``, ``episodes``,
``fold``, ``shot``, ``annotation``, ``seed``, ``protocol``, ``switches`` and more; percent),
``eval.md`` and ``overlays.png`` into the run folder; the last printed line is
``mIoU <x> FB-IoU <y>``. A list of seeds (``eval.seed=[0,1,2,3,4]``) gives mean ± std over seeds,
each seed with its own fixed episode list.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from vrpsam.baselines.harness import MethodModule
from vrpsam.baselines.registry import BASELINES, build_baseline
from vrpsam.cache.run import model_overrides, open_caches
from vrpsam.checkpoints import load_trained_model
from vrpsam.data.folds import check_fold
from vrpsam.fileio import atomic_write, atomic_write_json, atomic_write_text
from vrpsam.lit_module import VRPSAMModule
from vrpsam.protocol import Protocol, evaluation_protocol, preset_changes
from vrpsam.reports import eval_markdown, plot_overlays
from vrpsam.runtime import episode_list_path, quiet_library_noise
from vrpsam.train import CONFIG_PATH

METHODS = ("vrpsam", *BASELINES)
log = logging.getLogger(__name__)

# Data settings the model was trained with: an evaluation takes them from the checkpoint.
_MODEL_SIDE = {"image_size": 512, "interpolation": "bilinear"}


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
    """(model, info) for the configured method; ``info`` says what a trained model was trained
    on and under which protocol (empty for baselines)."""
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; available: {', '.join(METHODS)}")
    if cfg.method != "vrpsam":
        settings = cfg.get("baselines", {}).get(cfg.method) or {}
        plain = OmegaConf.to_container(settings, resolve=True) if settings else {}
        return None, {"training_free": True, "settings": plain}
    if not cfg.get("ckpt_path") and not cfg.get("export_dir"):
        if cfg.model.get("backbone") is None or cfg.model.get("sam") is None:
            raise ValueError(
                "vrpsam-eval needs ckpt_path=... (a training checkpoint) or export_dir=..., or a "
                "model from the config (experiment=... or model.backbone=... model.sam=...) to "
                "evaluate untrained"
            )
        warnings.warn("no ckpt_path/export_dir: evaluating an untrained VRP encoder", stacklevel=2)
        return None, {"untrained": True}
    expect = {"backbone": cfg.model.get("backbone"), "sam": cfg.model.get("sam")}
    return load_trained_model(
        ckpt_path=cfg.get("ckpt_path"),
        export_dir=cfg.get("export_dir"),
        sam_checkpoint=cfg.model.get("sam_checkpoint"),
        backbone_checkpoint=cfg.model.get("backbone_checkpoint"),
        expect=expect,
        random_frozen_weights=bool(cfg.get("random_frozen_weights")),
        **model_overrides(cfg),
    )


def settle(cfg: DictConfig, info: dict) -> tuple[DictConfig, Protocol]:
    """A copy of ``cfg`` with every null filled from what the checkpoint recorded (protocol,
    image size, interpolation, annotation), and the protocol; one warning lists the settings
    given on the command line that contradict the checkpoint."""
    cfg = copy.deepcopy(cfg)
    recorded = info.get("protocol")
    trained = {k: info.get(k) for k in ("dataset", "fold", "image_size", "interpolation")}
    protocol, contradictions = evaluation_protocol(
        cfg.protocol,
        recorded=recorded,
        recorded_dataset=trained["dataset"],
        dataset=cfg.data.dataset,
        config_dir=CONFIG_PATH,
    )
    notes = [f"protocol.{k}: checkpoint {old!r}, this run {new!r}"
             for k, (old, new) in contradictions.items()]  # fmt: skip
    with open_dict(cfg):
        cfg.protocol = protocol.as_dict()
        for key, fallback in _MODEL_SIDE.items():
            given, saved = cfg.data.get(key), trained.get(key)
            if given is None:
                cfg.data[key] = saved if saved is not None else fallback
            elif saved is not None and given != saved:
                notes.append(f"data.{key}: checkpoint {saved!r}, this run {given!r}")
        if cfg.eval.get("annotation") is None:
            cfg.eval.annotation = info.get("annotation") or "mask"
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


def build_eval_module(
    cfg: DictConfig, model, protocol: Protocol, seed: int
) -> tuple[L.LightningModule, Any]:
    """The Lightning module that tests ``model`` (VRP-SAM or a baseline) on one seed."""
    if cfg.method != "vrpsam":
        method = model if model is not None else build_baseline(cfg)
        module = MethodModule(
            method=method,
            annotation=cfg.eval.annotation,
            seed=seed,
            score_original_size=protocol.score_original_size,
            num_overlays=cfg.eval.overlays,
        )
        return module, method
    if model is None:  # untrained: built from the config, switches from the protocol
        model = hydra.utils.instantiate(cfg.model, **model_overrides(cfg)).eval()
    module = VRPSAMModule(
        model=model,
        optimizer=None,
        loss_ignore_index=protocol.loss_ignore_index,
        score_original_size=protocol.score_original_size,
        cache_features=cfg.cache_features,
        feature_caches=open_caches(cfg),
        compile=cfg.compile,
        num_overlays=cfg.eval.overlays,
    )
    return module, model


def evaluate_seed(
    cfg: DictConfig, model, protocol: Protocol, seed: int, out: Path
) -> tuple[dict, float, dict, Any]:
    """Test one seed's episode list; returns (results in percent, seconds per episode, the
    episode list's meta, the model used)."""
    shot = int(cfg.eval.shot)
    data = hydra.utils.instantiate(
        cfg.data,
        shot=shot,
        annotation=cfg.eval.annotation,
        batch_size=cfg.eval.batch_size,  # per process: metrics do not depend on it
        test_seed=seed,
        test_episodes=cfg.eval.episodes,
        test_episode_list=str(
            episode_list_path(
                cfg.data,
                cfg.paths.output_dir,
                seed=seed,
                n=cfg.eval.episodes,
                shot=shot,
                sampling=protocol.test_sampling,
            )
        ),
        **protocol.data_options(),
    )
    module, model = build_eval_module(cfg, model, protocol, seed)
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
    return result, seconds / max(result["episodes"], 1), data.test_episode_meta or {}, model


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate as the config says and write the reports; returns the ``eval.json`` content."""
    import torch

    quiet_library_noise()
    check_fold(cfg.data.fold)
    out = Path(cfg.paths.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model, info = build_method(cfg)
    cfg, protocol = settle(cfg, info)
    seeds = _seeds(cfg.eval.seed)
    runs = []
    for seed in seeds:
        result, seconds, meta, model = evaluate_seed(cfg, model, protocol, seed, out)
        runs.append((result, seconds, meta))
    first, _, meta = runs[0]
    mious = [r["miou"] for r, _, _ in runs]
    fbious = [r["fbiou"] for r, _, _ in runs]
    per_class = [
        None if any(r["per_class_iou"][i] is None for r, _, _ in runs)
        else statistics.fmean(r["per_class_iou"][i] for r, _, _ in runs)
        for i in range(len(first["class_ids"]))
    ]  # fmt: skip
    scored = [c for c, v in zip(first["class_ids"], first["per_class_iou"], strict=True)
              if v is not None]  # fmt: skip
    result = {
        "method": cfg.method,
        "dataset": cfg.data.dataset,
        "fold": int(cfg.data.fold),
        "shot": int(cfg.eval.shot),
        "annotation": cfg.eval.annotation,
        "image_size": int(cfg.data.image_size),
        "seed": seeds[0] if len(seeds) == 1 else seeds,
        "seeds": seeds,
        "episodes": first["episodes"],
        "miou": statistics.fmean(mious),
        "miou_std": statistics.stdev(mious) if len(mious) > 1 else 0.0,
        "fbiou": statistics.fmean(fbious),
        "fbiou_std": statistics.stdev(fbious) if len(fbious) > 1 else 0.0,
        "per_seed": [
            {"seed": s, "miou": r["miou"], "fbiou": r["fbiou"]}
            for s, (r, _, _) in zip(seeds, runs, strict=True)
        ],
        "class_ids": first["class_ids"],
        "per_class_iou": per_class,
        "classes_scored": scored,
        "classes_skipped": meta.get("classes_skipped", []),
        "seconds_per_episode": statistics.fmean(t for _, t, _ in runs),
        # Percent of the predicted foreground on objects of other classes (sources that know them).
        "other_class_share": statistics.fmean(r["other_class_share"] for r, _, _ in runs)
        if "other_class_share" in first
        else None,
        "protocol": protocol.name,
        "switches": protocol.switches(),
        "protocol_changes": preset_changes(protocol, cfg.data.dataset, CONFIG_PATH),
        "score_original_size": protocol.score_original_size,
        "units": "percent",
        "checkpoint": str(cfg.get("ckpt_path") or cfg.get("export_dir"))
        if cfg.method == "vrpsam"
        else None,
        "trained_on": _trained_on(info),
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


def _trained_on(info: dict) -> dict:
    """What to report of the training: everything but the bulky protocol (reported on its own)."""
    return {k: v for k, v in info.items() if k != "protocol"}


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> None:
    result = evaluate(cfg)
    log.info("wrote %s", Path(cfg.paths.run_dir) / "eval.json")
    print(f"mIoU {result['miou']:.2f} FB-IoU {result['fbiou']:.2f}")


if __name__ == "__main__":
    main()
