"""Run-level rules shared by the entry points: world size, batch split, episode list location."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


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


def episode_list_path(data_cfg: Any, output_dir: str | Path, *, seed: int, n: int) -> Path:
    """Where the fixed test episode list of (dataset tree, fold, shot, seed, n) lives, unless the
    config names a file: one list per setting, shared by every method and every world size."""
    given = data_cfg.get("test_episode_list")
    if given:
        return Path(given)
    tree = hashlib.sha256(os.path.abspath(str(data_cfg.root)).encode()).hexdigest()[:8]
    name = f"{data_cfg.dataset}_fold{data_cfg.fold}_shot{data_cfg.shot}_seed{seed}_n{n}_{tree}.json"
    return Path(output_dir) / "episodes" / name
