"""On-disk layout of a feature cache: safetensors shards plus one manifest.

    <cache.dir>/<kind>/cache.json                  signature, shard list (file, ids, bytes)
    <cache.dir>/<kind>/shard-<hash>.safetensors    one (N, ...) tensor per feature key

A shard holds the features of a fixed, sorted list of images (its name hashes that list), stored
as fp16/bf16 and read memory-mapped row by row; nothing is listed at run time. Shards and the
manifest are written to a temporary name and renamed, so a killed build leaves either complete
shards or nothing; the manifest is written last, after every shard exists, and records each
shard's size so that a truncated or replaced file is recognised before it is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vrpsam.artifacts.atomic import atomic_write, atomic_write_json
from vrpsam.cache.scope import check_fold, missing_image_message
from vrpsam.cache.signature import CacheError, check_signature, fingerprint

MANIFEST = "cache.json"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def shard_name(ids: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    return f"shard-{digest}.safetensors"


def write_shard(path: Path, features: dict[str, torch.Tensor], ids: Sequence[str], sig: str):
    """Write one shard atomically; its metadata names the images and the cache's fingerprint."""
    # One metadata entry: safetensors writes its metadata map in no fixed order, and a resumed
    # build must reproduce a shard byte for byte.
    metadata = {"vrpsam": json.dumps({"fingerprint": sig, "ids": list(ids)}, sort_keys=True)}
    tensors = {k: v.contiguous() for k, v in features.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_shard_header(path: Path) -> dict:
    """A shard's metadata (fingerprint, ids); raises :class:`CacheError` for an unreadable or
    truncated file."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CacheError(f"cache shard {path} is unreadable or truncated ({err})") from err
    if path.stat().st_size < _data_end(path):
        raise CacheError(f"cache shard {path} is truncated")
    return json.loads(metadata.get("vrpsam", "{}"))


def _data_end(path: Path) -> int:
    """The byte offset where a safetensors file's last tensor ends (header says)."""
    with path.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + size + max(ends, default=0)


class FeatureCache:
    """Read-only view of a complete cache: features by image id, memory-mapped.

    Args:
        folder: ``<cache.dir>/<kind>``.
        expected: the signature the run would compute (see :func:`cache_signature`); a cache
            with another one is refused.
        run: the run's fold and shot (:func:`vrpsam.cache.scope.scope`); a cache never built
            for its fold is refused, and a missing image is explained against it. None: no check.
    """

    def __init__(self, *, folder: str | Path, expected: dict, run: dict | None = None) -> None:
        self.folder = Path(folder)
        manifest_file = self.folder / MANIFEST
        if not manifest_file.is_file():
            partial = any(self.folder.glob("shard-*.safetensors"))
            state = "its build did not finish" if partial else "it was never built"
            raise CacheError(
                f"no feature cache at {self.folder} ({state}): run vrpsam-cache with the same "
                f"experiment/data/model settings and cache.dir={self.folder.parent}"
            )
        manifest = json.loads(manifest_file.read_text())
        check_signature(manifest["signature"], expected, self.folder)
        self.built_for: list[dict] = manifest.get("built_for", [])
        self.run = run
        if run is not None:
            check_fold(self.built_for, run, self.folder)
        self.signature = manifest["signature"]
        self.keys: tuple[str, ...] = tuple(manifest["keys"])
        self.dtype = DTYPES[self.signature["dtype"]]
        self.shards = manifest["shards"]
        self.index: dict[str, tuple[int, int]] = {}
        for number, shard in enumerate(self.shards):
            self._check_size(shard)
            for row, image_id in enumerate(shard["ids"]):
                self.index[image_id] = (number, row)
        self._handles: dict[int, object] = {}

    def _check_size(self, shard: dict) -> None:
        path = self.folder / shard["file"]
        if not path.is_file():
            raise CacheError(f"cache shard {path} is missing: run vrpsam-cache again to rebuild it")
        size = path.stat().st_size
        if size != shard["bytes"]:
            raise CacheError(
                f"cache shard {path} is truncated or was replaced ({size} bytes, the manifest "
                f"says {shard['bytes']}): delete it and run vrpsam-cache again to rebuild it"
            )

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self.index

    def nbytes(self) -> int:
        return sum(shard["bytes"] for shard in self.shards)

    def _handle(self, number: int):
        if number not in self._handles:
            path = self.folder / self.shards[number]["file"]
            try:
                self._handles[number] = safe_open(str(path), framework="pt")
            except (SafetensorError, OSError) as err:
                raise CacheError(f"cache shard {path} is unreadable ({err})") from err
        return self._handles[number]

    def get(self, ids: Sequence[str], key: str) -> torch.Tensor:
        """Stacked features (N, ...) of ``ids`` in the cache's dtype."""
        rows = []
        for image_id in ids:
            if image_id not in self.index:
                raise CacheError(missing_image_message(
                    image_id, self.folder, len(self.index), self.built_for, self.run
                ))  # fmt: skip
            number, row = self.index[image_id]
            rows.append(self._handle(number).get_slice(key)[row : row + 1])
        return torch.cat(rows)

    def __getstate__(self):  # handles are per process (DataLoader workers, spawn)
        return {**self.__dict__, "_handles": {}}


def write_manifest(
    folder: Path,
    signature: dict,
    keys: Sequence[str],
    shards: Sequence[dict],
    built_for: Sequence[dict] = (),
) -> None:
    """Write ``cache.json``; ``built_for``: the folds, shots and splits it holds the images of
    (:mod:`vrpsam.cache.scope`)."""
    atomic_write_json(
        folder / MANIFEST,
        {"signature": signature, "fingerprint": fingerprint(signature), "keys": list(keys),
         "shards": list(shards), "built_for": list(built_for)},
        indent=1,
    )  # fmt: skip
