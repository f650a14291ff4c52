"""What a feature cache was computed with, so that a cache is never read for another model.

A signature names everything the cached tensors depend on: the frozen model (variant, size
overrides, weight-file hash, preprocessing) and the image pipeline (dataset, square size,
interpolation), plus the storage dtype and the vrpsam version. A cache whose signature differs from
what the run would compute is refused with the differences spelled out.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vrpsam import __version__
from vrpsam.artifacts.atomic import sha256_file
from vrpsam.conf import as_dict
from vrpsam.modeling.switches import ModelSwitches

CACHE_FORMAT = 1
KINDS = ("sam", "backbone")


class CacheError(RuntimeError):
    """A feature cache that cannot be used as it is (incomplete, corrupt, missing an image)."""


class CacheMismatchError(CacheError):
    """A feature cache computed with another model or image pipeline than the run uses."""


@cache
def _file_hash(path: str) -> str:
    # Hashing a 2.5 GB SAM checkpoint takes seconds: once per process and file is enough.
    return sha256_file(path)


def weight_hash(path: str | None, what: str, key: str) -> str:
    if not path:
        raise CacheError(
            f"a feature cache is tied to the {what} weight file it was computed with, and this "
            f"run builds random {what} weights: set {key}=<file> (random stand-ins can be saved "
            f"with torch.save(model.state_dict(), file)) or turn the cache off (cache.dir=null)"
        )
    if not Path(path).is_file():
        raise CacheError(f"{what} weight file {path} does not exist (config key {key})")
    return _file_hash(str(Path(path).resolve()))


def cache_signature(kind: str, model: DictConfig, data: DictConfig, dtype: str) -> dict:
    """The signature of a ``kind`` ("sam" or "backbone") cache for a run's model and data config."""
    if kind not in KINDS:
        raise ValueError(f"cache kind must be one of {KINDS}, got {kind!r}")
    switches = ModelSwitches.resolve(
        official_compat=model.get("official_compat", False),
        sam_preprocess=model.get("sam_preprocess"),
        align_corners=model.get("align_corners"),
    )
    common = {
        "format": CACHE_FORMAT,
        "vrpsam": __version__,
        "kind": kind,
        "dataset": data.dataset,
        # Image ids repeat across trees (two synthetic seeds, a re-download): the tree is part of
        # what the features are of, so a cache never serves another folder's images.
        "root": None if data.get("root") is None else os.path.abspath(str(data.root)),
        "image_size": int(data.image_size),
        "interpolation": data.get("interpolation", "bilinear"),
        "dtype": dtype,
    }
    if kind == "sam":
        return {
            **common,
            "sam": model.sam,
            "sam_kwargs": as_dict(model.get("sam_kwargs")),
            "sam_checkpoint_sha256": weight_hash(
                model.get("sam_checkpoint"), "SAM", "model.sam_checkpoint"
            ),
            "sam_preprocess": switches.sam_preprocess,
            "align_corners": switches.align_corners,
        }
    return {
        **common,
        "backbone": model.backbone,
        "backbone_kwargs": as_dict(model.get("backbone_kwargs")),
        "backbone_checkpoint_sha256": weight_hash(
            model.get("backbone_checkpoint"), "backbone", "model.backbone_checkpoint"
        ),
    }


def fingerprint(signature: dict) -> str:
    """A short stable hash of a signature (stored in every shard, so strays are recognised)."""
    text = json.dumps(signature, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# What each signature entry is called on the command line, so that a refusal names the setting to
# change rather than the manifest's key.
SETTINGS = {
    "format": "the cache format",
    "vrpsam": "the vrpsam version",
    "dataset": "data.dataset",
    "root": "data.root",
    "image_size": "data.image_size",
    "interpolation": "data.interpolation",
    "dtype": "cache.dtype",
    "sam": "model.sam",
    "sam_kwargs": "model.sam_kwargs",
    "sam_checkpoint_sha256": "model.sam_checkpoint",
    "sam_preprocess": "model.sam_preprocess",
    "align_corners": "model.align_corners",
    "backbone": "model.backbone",
    "backbone_kwargs": "model.backbone_kwargs",
    "backbone_checkpoint_sha256": "model.backbone_checkpoint",
}


def _difference(key: str, cached: Any, run: Any) -> str:
    setting = SETTINGS.get(key, key)
    if key.endswith("_sha256"):  # the file's hash, shortened: the path may be the same
        cached, run = (f"sha256 {str(h)[:12]}…" for h in (cached, run))
        return f"{setting}: a weight file with {cached} (cache) vs {run} (this run)"
    return f"{setting}: {cached!r} (cache) vs {run!r} (this run)"


def check_signature(found: dict, expected: dict, where: Path) -> None:
    """Refuse a cache computed with something else, naming every differing setting and the fix."""
    keys = sorted(set(found) | set(expected))
    diffs = [_difference(k, found.get(k), expected.get(k)) for k in keys
             if found.get(k) != expected.get(k)]  # fmt: skip
    if diffs:
        raise CacheMismatchError(
            f"the feature cache at {where} was built with other settings than this run's: "
            + "; ".join(diffs)
            + ". Point cache.dir at a new folder (or delete this one) and run vrpsam-cache with "
            "this run's settings, or turn the cache off with cache.dir=null."
        )
