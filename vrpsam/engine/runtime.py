"""Run-level rules shared by the entry points: world size, batch split, episode list location."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vrpsam.conf import as_dict


def world_size(trainer_cfg: Any) -> int:
    """Processes a Trainer config will run: devices × nodes. ``devices`` may be an int, a list of
    device ids, a "0,1" string, or "auto"/-1 (all visible GPUs, or one CPU process)."""
    devices = trainer_cfg.get("devices", 1)
    nodes = int(trainer_cfg.get("num_nodes", 1) or 1)
    if devices in ("auto", -1, "-1"):
        import torch

        gpu = trainer_cfg.get("accelerator") in ("gpu", "cuda", "auto")
        devices = max(torch.cuda.device_count(), 1) if gpu else 1
    if isinstance(devices, str):
        devices = [d for d in devices.split(",") if d.strip()] if "," in devices else int(devices)
    count = int(devices) if isinstance(devices, int) else len(devices)
    return count * nodes


def per_process_batch(total: int, processes: int) -> int:
    """Split the total batch over processes, refusing splits that change the total.

    Raises:
        ValueError: ``total`` is not divisible by the number of processes.
    """
    if total % processes:
        raise ValueError(
            f"total_batch_size={total} cannot be split evenly over {processes} processes "
            f"(trainer.devices × trainer.num_nodes): the paper's recipe needs a total batch of 8; "
            f"use 1, 2, 4 or 8 processes, or set total_batch_size to a multiple of {processes}."
        )
    return total // processes


def episode_list_path(
    data_cfg: Any,
    output_dir: str | Path,
    *,
    seed: int,
    n: int | None,
    shot: int,
    sampling: str,
    split: str = "novel",
) -> Path:
    """Where the fixed test episode list of (dataset tree, fold, split, shot, sampling rule, seed,
    n, reader options) lives, unless the config names a file: one list per setting, shared by
    every method and every world size. ``shot`` is the run's (``eval.shot`` for an evaluation,
    not ``data.shot``); ``n=None`` is one pass over the test images (``nall``); ``split="base"``
    is the base-class test."""
    given = data_cfg.get("test_episode_list")
    if given:
        return Path(given)
    # The tree and the reader's options (size threshold, lists) decide which images and classes
    # form episodes: a list drawn under other options is another list, never silently reused.
    options = as_dict(data_cfg.get("source_options"))
    shaping = json.dumps([os.path.abspath(str(data_cfg.root)), options], sort_keys=True)
    tree = hashlib.sha256(shaping.encode()).hexdigest()[:8]
    part = "_base" if split == "base" else ""
    count = "all" if n is None else n
    name = (
        f"{data_cfg.dataset}_fold{data_cfg.fold}{part}_shot{shot}_{sampling}_seed{seed}_"
        f"n{count}_{tree}.json"
    )
    return Path(output_dir) / "episodes" / name


# Library messages that tell a vrpsam user nothing they can act on: the frozen SAM and backbone
# are in eval mode on purpose; the pytree deprecation is between Lightning and torch; device
# availability lines and an advertisement are printed on every run.
_QUIET_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Found \d+ module\(s\) in eval mode at the start of training",
    # Short runs (the demo, debug=limit) have fewer batches than the logging interval.
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)
_QUIET_LOG_LINES = ("GPU available:", "TPU available:", "💡 Tip:", "Loading `train_dataloader`")


class _DropLines:
    """A logging filter that drops records starting with any of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def filter(self, record) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def quiet_library_noise() -> None:
    """Silence the library warnings and log lines above (idempotent); call in each entry point."""
    import logging
    import warnings

    for pattern in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in target.filters):
            target.addFilter(_DropLines(_QUIET_LOG_LINES))
