"""The measurements, each meant to run in a fresh process (see :mod:`vrpsam.bench.worker`), so
that peak memory belongs to one measurement only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from vrpsam.artifacts.atomic import atomic_write_json
from vrpsam.bench.setups import (
    BATCH,
    Scale,
    compose_cfg,
    demo_overrides,
    main_overrides,
    train_loop_overrides,
)


class StepTimer(L.Callback):
    """Writes the wall time at the start of the first training step and at the end of every
    step to ``out`` when fitting ends."""

    def __init__(self, *, out: str) -> None:
        self.out = out
        self.start: float | None = None
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter())

    def on_fit_end(self, trainer, pl_module) -> None:
        atomic_write_json(self.out, {"start": self.start, "times": self.times})


def episodes_per_second(times: list[float], warmup: int, batch: int = BATCH) -> float:
    """Episodes/s over the steps after ``warmup`` (the first steps pay one-time costs)."""
    if len(times) < warmup + 2:
        raise ValueError(f"need more than {warmup + 1} timed steps, got {len(times)}")
    return batch * (len(times) - 1 - warmup) / (times[-1] - times[warmup])


def train_loop(scale: Scale, work: Path, *, cached: bool, fast: bool = False) -> dict:
    """The real training loop (:func:`vrpsam.engine.training.train`): data loading, features,
    step, logging."""
    from vrpsam.engine.training import train

    # The uncached loop (vit_b at 1024 on a CPU: a step is long) is timed from the start of its
    # first step, with no warm-up: its one-time costs are small beside one step, and skipping a
    # step would cost a large part of the benchmark's time.
    warmup = scale.warmup if cached else 0
    steps = scale.train_steps + warmup + 1 if cached else scale.uncached_steps
    run = f"train_{'cached' if cached else 'uncached'}{'_fast' if fast else ''}"
    timer_file = work / "runs" / f"{run}.steps.json"
    overrides = main_overrides(scale, work, run, cached=cached, fast_pseudo_mask=fast)
    overrides += train_loop_overrides(steps)
    overrides += [
        "+callbacks.timer._target_=vrpsam.bench.measure.StepTimer",
        f"+callbacks.timer.out={timer_file}",
    ]
    train(compose_cfg("train", overrides))
    timed = json.loads(timer_file.read_text())
    times = timed["times"] if cached else [timed["start"], *timed["times"]]
    return {"episodes_per_s": episodes_per_second(times, warmup), "steps": len(timed["times"])}


def floor(scale: Scale, work: Path, *, fast: bool = False) -> dict:
    """What each step cannot avoid, on frozen features already in memory: the reference's masked
    high stage (unless ``fast``), VRP encoder, SAM mask decoder forward + backward, AdamW step."""
    import hydra

    from vrpsam.cache.run import model_overrides
    from vrpsam.engine.losses import bce_dice_loss

    cfg = compose_cfg("train", main_overrides(scale, work, "floor", cached=True,
                                              fast_pseudo_mask=fast))  # fmt: skip
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model, **model_overrides(cfg))
    model.encoder.train()
    size = scale.image_size
    images = torch.randn(2 * BATCH, 3, size, size)
    with torch.no_grad():  # the features a cache would hold (values do not change the cost)
        ref_features = model.reference_features(images[:BATCH])
        tgt_features = model.target_features(images[BATCH:])
        grid = model.sam.sam.prompt_encoder.image_embedding_size
        embeddings = torch.randn(BATCH, model.sam.embed_dim, *grid)
    masks = torch.zeros(BATCH, 1, size, size)
    masks[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 2] = 1
    targets = masks[:, 0].long()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    frame = torch.zeros(BATCH, 3, size, size)
    times = [time.perf_counter()]
    for _ in range(scale.floor_steps + scale.warmup + 1):
        state = model.reference_state(None, masks, features=ref_features)
        prompts = model.prompts_from_reference(state, None, 1, features=tgt_features)
        logits = model.decode(prompts, frame, image_embeddings=embeddings)
        loss = bce_dice_loss(logits, targets)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter())
    return {"episodes_per_s": episodes_per_second(times[1:], scale.warmup)}


def predictor(scale: Scale, work: Path) -> dict:
    """10 targets with one reference (batched, reference once) vs 10 independent calls."""
    from vrpsam.data.sources import build_source
    from vrpsam.modeling.vrp_sam import build_vrp_sam
    from vrpsam.predictor import VRPSAMPredictor

    torch.manual_seed(0)
    model = build_vrp_sam(backbone=scale.backbone, sam="tiny",
                          sam_kwargs={"image_size": scale.sam_frame})  # fmt: skip
    # The demo-sized tree has enough novel-class images for 10 distinct targets.
    root = work / "demo_data"
    source = build_source("pascal", root, 0, "test", lists="generate", min_pixels=400)
    by_class = source.image_ids_by_class()
    class_id, ids = next((c, i) for c, i in by_class.items() if len(i) > 1)
    targets = sorted({i for group in by_class.values() for i in group} - {ids[0]})
    images = [source.load_image(i) for i in targets[: scale.predictor_targets]]
    reference = source.load_image(ids[0])
    mask = source.load_mask(ids[0], class_id) == 1
    pred = VRPSAMPredictor(model=model, image_size=scale.image_size, target_cache_size=0)

    def reference_side():
        pred.reset_reference()
        pred.set_reference(reference, mask=mask)
        pred._reference_state()

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    reference_side()
    pred.predict(images[0])  # warm-up
    t_ref = float(np.median([timed(reference_side) for _ in range(3)]))
    t_tgt = float(np.median([timed(lambda: pred.predict(images[0])) for _ in range(3)]))

    def independent():
        for image in images:
            reference_side()
            pred.predict(image)

    def batched():
        reference_side()
        pred.predict_batch(images)

    t_independent, t_batched = timed(independent), timed(batched)
    n = len(images)
    return {
        "targets": n,
        "t_ref_s": t_ref,
        "t_tgt_s": t_tgt,
        "independent_s": t_independent,
        "batched_s": t_batched,
        "speedup": t_independent / t_batched,
        "ideal": (t_ref + t_tgt) * n / (t_ref + n * t_tgt),
    }


def evaluation(scale: Scale, work: Path, *, demo: bool) -> dict:
    """Wall seconds of ``vrpsam-eval``'s :func:`evaluate` with cached features (model build,
    episode list and test loop included)."""
    from vrpsam.engine.evaluation import evaluate

    if demo:
        episodes = scale.eval_episodes
        overrides = demo_overrides(work, "eval_demo")
    else:
        episodes = scale.r50_eval_episodes
        overrides = main_overrides(scale, work, "eval_main", cached=True)
        overrides = [o for o in overrides if not o.startswith("total_batch_size=")]
        overrides.append(f"eval.batch_size={BATCH}")
    overrides += [
        f"eval.episodes={episodes}",
        "eval.overlays=0",
        "trainer.enable_progress_bar=false",
    ]
    start = time.perf_counter()
    result = evaluate(compose_cfg("eval", overrides))
    seconds = time.perf_counter() - start
    return {"episodes": result["episodes"], "seconds": seconds,
            "seconds_per_episode": result["seconds_per_episode"]}  # fmt: skip


def build_caches(scale: Scale, work: Path, which: str) -> dict:
    """Build one benchmark cache (``main`` or ``demo``); returns its size and time."""
    from vrpsam.cache.run import build_run_cache

    if which == "demo":
        overrides = [*demo_overrides(work, "cache_demo"), "cache.splits=[test]"]
    else:
        overrides = main_overrides(scale, work, f"cache_{which}", cached=True)
        overrides += ["cache.splits=[train,test]"]
    start = time.perf_counter()
    reports = build_run_cache(compose_cfg("build_cache", overrides), log=lambda _: None)
    return {"seconds": time.perf_counter() - start,
            "mib": sum(r.nbytes for r in reports) / 2**20,
            "images": max(r.images for r in reports)}  # fmt: skip
