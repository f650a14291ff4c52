"""The feature cache as a run uses it: which images, what each kind holds, open or build it.

Kinds: ``sam`` holds SAM image embeddings (key ``sam``, 256×64×64 per image for the official
SAMs: 2 MiB in fp16); ``backbone`` holds the frozen backbone's annotation-independent features
(keys ``mid``, ``pre_high``, ``high``: ≈36 MiB per image for ResNet-50 at 512 px, which is why it
is opt-in and its size is estimated before building).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from vrpsam.cache.build import BuildReport, build_cache, rank_and_world
from vrpsam.cache.scope import scope
from vrpsam.cache.signature import cache_signature
from vrpsam.cache.store import FeatureCache
from vrpsam.data.transforms import original_size

KEYS = {"sam": ("sam",), "backbone": ("mid", "pre_high", "high")}


def enabled_kinds(cfg: DictConfig) -> list[str]:
    """The cache kinds a run reads (none when ``cache.dir`` is null)."""
    cache = cfg.get("cache") or {}
    if not cache.get("dir"):
        return []
    return [kind for kind in ("sam", "backbone") if cache.get(kind)]


def model_overrides(cfg: DictConfig) -> dict:
    """Builder arguments for a run that reads the cache: no SAM image encoder to build."""
    return {"sam_image_encoder": False} if "sam" in enabled_kinds(cfg) else {}


def run_scope(cfg: DictConfig) -> dict:
    """The fold and shot whose images a run reads (an evaluation's shot is ``eval.shot``)."""
    shot = cfg.eval.shot if cfg.get("eval") is not None else cfg.data.shot
    return scope(cfg.data.fold, shot)


def open_caches(cfg: DictConfig) -> dict[str, FeatureCache]:
    """The run's caches by kind, each checked against the run's own signature and fold."""
    return {
        kind: FeatureCache(
            folder=Path(cfg.cache.dir) / kind,
            expected=cache_signature(kind, cfg.model, cfg.data, cfg.cache.dtype),
            run=run_scope(cfg),
        )
        for kind in enabled_kinds(cfg)
    }


def split_images(datamodule, splits) -> dict[str, object]:
    """{image id: the source that loads it} over every image the splits' episodes can use."""
    owners: dict[str, object] = {}
    for split in splits:
        source = datamodule.source(split)
        if source is None:
            continue
        for ids in source.image_ids_by_class().values():
            for image_id in ids:
                owners.setdefault(image_id, source)
    return owners


def feature_fn(model, kind: str, owners: dict, transform) -> Callable[[str], dict]:
    """One image's features of ``kind``, computed exactly as training computes them."""

    @torch.no_grad()
    def compute(image_id: str) -> dict[str, torch.Tensor]:
        image = owners[image_id].load_image(image_id)
        batch = transform.image(image)[None]
        if kind == "sam":
            return {"sam": model.sam.encode(batch, original_size(image)[None])[0]}
        mid, pre_high = model.backbone.mid(batch)
        return {"mid": mid[0], "pre_high": pre_high[0], "high": model.backbone.high(pre_high)[0]}

    return compute


def build_run_cache(
    cfg: DictConfig, *, data_options: dict | None = None, log=print
) -> list[BuildReport]:
    """Build (or complete) every cache kind the config enables, for the configured splits.

    Args:
        cfg: a ``build_cache`` config (the training config plus ``cache.*``).
        data_options: the protocol's data switches, which decide the splits' images
            (:meth:`vrpsam.engine.protocol.Protocol.data_options`).
        log: where progress lines go.
    """
    kinds = enabled_kinds(cfg)
    if not kinds:
        raise ValueError("set cache.dir=<folder> (and cache.sam / cache.backbone) to build a cache")
    # Signatures first: random frozen weights or a missing weight file are refused before any
    # model is built.
    signatures = {
        kind: cache_signature(kind, cfg.model, cfg.data, cfg.cache.dtype) for kind in kinds
    }
    model = hydra.utils.instantiate(cfg.model).eval()
    datamodule = hydra.utils.instantiate(cfg.data, **(data_options or {}))
    owners = split_images(datamodule, list(cfg.cache.splits))
    rank, world = rank_and_world()
    reports = []
    for kind, signature in signatures.items():
        compute = feature_fn(model, kind, owners, datamodule.transform)
        if rank == 0 and owners:
            sample = compute(next(iter(sorted(owners))))
            per_image = sum(v.numel() for v in sample.values()) * 2  # fp16/bf16 bytes
            total = len(owners) * per_image / 2**30
            log(f"{kind} cache: {len(owners)} images × {per_image / 2**20:.1f} MiB ≈ "
                f"{total:.2f} GiB on disk at {cfg.cache.dir}/{kind}")  # fmt: skip
        report = build_cache(
            Path(cfg.cache.dir) / kind,
            signature=signature,
            ids=owners,
            compute=compute,
            keys=KEYS[kind],
            shard_size=int(cfg.cache.shard_size),
            rank=rank,
            world_size=world,
            built_for=scope(cfg.data.fold, cfg.data.shot, cfg.cache.splits),
        )
        log(
            f"{kind} cache: {report.images} images, {report.nbytes / 2**20:.1f} MiB in "
            f"{report.folder} ({report.computed_shards} shards computed, "
            f"{report.reused_shards} reused)"
        )
        reports.append(report)
    return reports
