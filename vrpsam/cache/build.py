"""Compute a feature cache once: every image a fold's splits use, sharded, resumable, DDP-aware.

Ranks build disjoint shards (shard ``j`` belongs to rank ``j mod world``); rank 0 waits for all of
them and writes the manifest. The shard plan depends only on the sorted image ids and the shard
size, so an interrupted build, run again, skips the complete shards and recomputes the rest into
byte-identical files. Images are computed one at a time (a batch could change a convolution's last
bits), so a cache never depends on how it was built.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vrpsam.cache.scope import merged
from vrpsam.cache.signature import CacheError, check_signature, fingerprint
from vrpsam.cache.store import (
    DTYPES,
    MANIFEST,
    read_shard_header,
    shard_name,
    write_manifest,
    write_shard,
)

# (image id) -> {key: (C, h, w) float tensor}
ComputeFn = Callable[[str], dict[str, torch.Tensor]]


@dataclass
class BuildReport:
    folder: Path
    images: int
    computed_shards: int
    reused_shards: int
    nbytes: int


def check_writable(folder: Path) -> None:
    """Fail early, with the fix, when the cache folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A uniquely named probe: ranks check the same folder at the same time.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise CacheError(
            f"cannot write the feature cache to {folder} ({err}): set cache.dir to a writable "
            f"folder (a cache folder that is read-only can still be *read* by training)"
        ) from err


def plan_shards(
    ids: Iterable[str], shard_size: int, existing: Sequence[dict] = ()
) -> list[list[str]]:
    """Shards for the ids not already in ``existing`` shards: sorted, in chunks of shard_size."""
    done = {i for shard in existing for i in shard["ids"]}
    todo = sorted(set(ids) - done)
    return [todo[i : i + shard_size] for i in range(0, len(todo), shard_size)]


def _shard_is_complete(path: Path, ids: Sequence[str], sig: str) -> bool:
    if not path.is_file():
        return False
    try:
        meta = read_shard_header(path)
    except CacheError:
        return False  # truncated or foreign: rebuilt below
    return meta.get("fingerprint") == sig and meta.get("ids") == list(ids)


def _still_valid(folder: Path, shard: dict, sig: str) -> bool:
    path = folder / shard["file"]
    return (
        path.is_file()
        and path.stat().st_size == shard["bytes"]
        and _shard_is_complete(path, shard["ids"], sig)
    )


def _build_shard(
    path: Path, ids: Sequence[str], compute: ComputeFn, dtype: torch.dtype, sig: str, progress
) -> None:
    rows: dict[str, list[torch.Tensor]] = {}
    for image_id in ids:
        for key, value in compute(image_id).items():
            rows.setdefault(key, []).append(value.detach().to("cpu", dtype))
        progress()
    write_shard(path, {k: torch.stack(v) for k, v in rows.items()}, ids, sig)


def build_cache(
    folder: str | Path,
    *,
    signature: dict,
    ids: Iterable[str],
    compute: ComputeFn,
    keys: Sequence[str],
    shard_size: int = 64,
    rank: int = 0,
    world_size: int = 1,
    wait_seconds: float = 24 * 3600,
    show_progress: bool = True,
    built_for: dict | None = None,
) -> BuildReport:
    """Build (or complete) the cache in ``folder`` for ``ids``.

    Args:
        folder: ``<cache.dir>/<kind>``.
        signature: from :func:`vrpsam.cache.cache_signature`; an existing cache with another
            signature is refused.
        ids: every image id to cache (duplicates are fine).
        compute: features of one image id, {key: (C, h, w)}, with exactly ``keys``.
        shard_size: images per shard.
        rank, world_size: this process among the builders (``RANK``/``WORLD_SIZE`` of torchrun).
        wait_seconds: how long rank 0 waits for the other ranks' shards.
        built_for: the fold, shot and splits ``ids`` are the images of
            (:func:`vrpsam.cache.scope.scope`), added to what the manifest records.

    Returns:
        what was built, reused and how many bytes the cache holds.
    """
    folder = Path(folder)
    check_writable(folder)
    dtype = DTYPES[signature["dtype"]]
    sig = fingerprint(signature)
    existing: list[dict] = []
    recorded: list[dict] = []
    manifest_file = folder / MANIFEST
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        check_signature(manifest["signature"], signature, folder)
        recorded = manifest.get("built_for", [])
        # A shard that was truncated or replaced since is dropped: its images are planned again
        # (into the same shard, as the plan depends only on the ids).
        existing = [s for s in manifest["shards"] if _still_valid(folder, s, sig)]
    plan = plan_shards(ids, shard_size, existing)
    mine = [shard for j, shard in enumerate(plan) if j % world_size == rank]
    todo = [s for s in mine if not _shard_is_complete(folder / shard_name(s), s, sig)]
    bar = _progress(sum(len(s) for s in todo), show_progress, f"caching {folder.name} features")
    for shard in todo:
        _build_shard(folder / shard_name(shard), shard, compute, dtype, sig, bar.update)
    bar.close()
    shards = existing + [{"file": shard_name(s), "ids": s} for s in plan]
    if rank == 0:
        _wait_for(folder, plan, wait_seconds)
        for shard in shards:
            shard["bytes"] = (folder / shard["file"]).stat().st_size
        scopes = merged(recorded, built_for) if built_for else recorded
        stale = plan or len(existing) != len(shards) or scopes != recorded
        if stale or not manifest_file.is_file():
            write_manifest(folder, signature, keys, shards, scopes)
    else:
        _wait_for_manifest(folder, wait_seconds)
    nbytes = sum((folder / s["file"]).stat().st_size for s in shards)
    return BuildReport(folder, sum(len(s["ids"]) for s in shards), len(todo),
                       len(mine) - len(todo), nbytes)  # fmt: skip


def _wait_for(folder: Path, plan: Sequence[Sequence[str]], wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    missing = [folder / shard_name(s) for s in plan]
    while missing:
        missing = [p for p in missing if not p.is_file()]
        if missing and time.monotonic() > deadline:
            raise CacheError(
                f"{len(missing)} cache shards (e.g. {missing[0].name}) were not written by the "
                f"other ranks within {wait_seconds:.0f} s; run vrpsam-cache again to finish"
            )
        if missing:
            time.sleep(1.0)


def _wait_for_manifest(folder: Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while not (folder / MANIFEST).is_file():
        if time.monotonic() > deadline:
            raise CacheError(f"rank 0 did not finish the cache manifest in {folder}")
        time.sleep(1.0)


def _progress(total: int, enabled: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", disable=not enabled or total == 0)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of builders (torchrun's environment, else 0 of 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
