"""One-shot video object segmentation on DAVIS (``data=davis2017`` / ``data=davis2016``).

    vrpsam-eval data=davis2017 ckpt_path=RUN/checkpoints/best.ckpt
    vrpsam-eval data=davis2016 method=persam_f model.sam=vit_h model.sam_checkpoint=...

Every object of a sequence is segmented in every later frame from its mask in the first frame
(``eval.annotation``: the mask, or a point, box or scribble simulated from it, seeded). Scores
follow the DAVIS protocol as the davis2017-evaluation code computes it
(:mod:`vrpsam.engine.davis_metrics`): J and F per object and frame over frames ``[1:-1]``, the
mean per object, then the mean over all objects.

Writes into the run folder ``eval.json`` (``j_mean``, ``f_mean``, ``jf_mean`` in percent,
``per_sequence``, the method, protocol and timing keys of image evaluations), ``eval.md``,
``overlays.png`` (a strip of frames per sequence) and ``seed<k>/results.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from vrpsam.artifacts.atomic import atomic_write, atomic_write_json, atomic_write_text
from vrpsam.cache.run import model_overrides
from vrpsam.data.davis import DavisSource
from vrpsam.engine.davis_metrics import BOUND_TH
from vrpsam.engine.methods import TrainedVRPSAM, run_record
from vrpsam.engine.progress import pass_progress
from vrpsam.engine.protocol import Protocol
from vrpsam.engine.seeds import single_seed
from vrpsam.engine.video_module import DavisDataModule, VideoModule, VRPSAMVideo
from vrpsam.reports.video import plot_video_strips, video_markdown


class VideoResults(L.Callback):
    """Writes the results and the overlay strip on rank 0, where the caller reads them, also
    when the test ran in spawned processes (``strategy=ddp_spawn``)."""

    def __init__(self, *, folder: Path, overlays: Path) -> None:
        self.folder = folder
        self.overlays = overlays

    def on_test_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        results = pl_module.results
        atomic_write_json(self.folder / "results.json", results, indent=2)
        if pl_module.overlays:
            scores = {row["sequence"]: row["jf_mean"] for row in results["per_sequence"]}
            strips = pl_module.overlays
            atomic_write(self.overlays, lambda tmp: plot_video_strips(strips, tmp, scores))


def _seed(value: Any) -> int:
    return single_seed(
        value,
        "video evaluation takes one eval.seed: the reference is fixed by the sequence (only "
        "simulated point/box/scribble annotations use a seed)",
    )


def video_runner(cfg: DictConfig, method: Any) -> Any:
    """The method with the two-step interface: a baseline as it is, VRP-SAM wrapped (built from
    the config when untrained)."""
    if not isinstance(method, TrainedVRPSAM):
        return method
    if method.model is None:
        method.model = hydra.utils.instantiate(cfg.model, **model_overrides(cfg)).eval()
    return VRPSAMVideo(method.model)


def evaluate_video(cfg: DictConfig, method: Any, protocol: Protocol, out: Path) -> dict:
    """Evaluate ``method`` on the DAVIS split ``cfg.data`` names and write the reports.

    Args:
        cfg: a settled evaluation config (:func:`vrpsam.engine.settle.settle`) with a video
            ``data`` group (``conf/data/davis2017.yaml``).
        method: from :func:`vrpsam.engine.methods.build_method`.
        protocol: the protocol in effect (reported; scoring is the DAVIS protocol's).
        out: the run folder.

    Returns:
        the ``eval.json`` content.
    """
    if cfg.get("cache") is not None and cfg.cache.get("dir"):
        raise ValueError(
            "the feature cache (cache.dir) holds episode images, not video frames: evaluate "
            "DAVIS without cache.dir"
        )
    data = cfg.data
    source = DavisSource(
        data.root, year=str(data.year), split=data.get("split", "val"), resolution=data.resolution
    )
    seed = _seed(cfg.eval.seed)
    trained = isinstance(method, TrainedVRPSAM)
    module = VideoModule(
        runner=video_runner(cfg, method),
        sequences=source.sequences,
        image_size=int(data.image_size),
        interpolation=data.interpolation,
        annotation=cfg.eval.annotation,
        seed=seed,
        frame_batch=int(data.get("frame_batch", 8)),
        num_overlays=min(int(cfg.eval.overlays), 4),
    )
    folder = out / f"seed{seed}"
    label = f"{cfg.method.name}, {data.dataset} {data.get('split', 'val')}"
    progress, bar = pass_progress(cfg.trainer, label, "sequences")
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[VideoResults(folder=folder, overlays=out / "overlays.png"), progress],
        enable_checkpointing=False,
        enable_progress_bar=bar,
        # PerSAM-F fits per object: autograd must stay available inside the test loop.
        inference_mode=trained,
    )
    start = time.perf_counter()
    trainer.test(module, datamodule=DavisDataModule(source), verbose=False)
    seconds = time.perf_counter() - start
    scores = json.loads((folder / "results.json").read_text())
    frames = sum(len(source.frames(s)) - 1 for s in source.sequences)
    masks = sum((len(source.frames(s)) - 1) * len(source.objects(s)) for s in source.sequences)
    result = {
        "method": cfg.method.name,
        "dataset": data.dataset,
        "split": data.get("split", "val"),
        "shot": 1,
        "annotation": cfg.eval.annotation,
        "image_size": int(data.image_size),
        "seed": seed,
        **scores,
        "frames_predicted": frames,
        "bound_th": BOUND_TH,
        "scoring": "DAVIS (davis2017-evaluation): J and F per object over frames [1:-1], "
        "mean per object, then over all objects",
        "seconds_per_frame": seconds / max(frames, 1),
        "seconds_per_object": seconds / max(masks, 1),  # one object in one frame
        **run_record(cfg, method, protocol),
    }
    atomic_write_json(out / "eval.json", result, indent=2)
    atomic_write_text(out / "eval.md", video_markdown(result))
    return result
