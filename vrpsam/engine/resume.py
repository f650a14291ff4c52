"""Resuming a training run: which checkpoint ``ckpt_path`` names, and whether this run may
continue it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

RESUME_KEYS = {
    "dataset": "data.dataset",
    "fold": "data.fold",
    "shot": "data.shot",
    "annotation": "data.annotation",
}
"""What a resumed run must share with its checkpoint (``run_info`` key → config key): the split of
classes it trains on and the episodes it draws. Another value would go on training a different
experiment under the first one's steps, schedule and validation history."""


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint ``ckpt_path`` names: a path, or ``last`` = this run folder's last.ckpt.

    Raises:
        FileNotFoundError: the checkpoint does not exist (never a silent start from scratch).
    """
    given = cfg.get("ckpt_path")
    if not given:
        return None
    path = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt" if given == "last" else Path(given)
    if not path.is_file():
        hint = (
            "ckpt_path=last resumes the run folder given by hydra.run.dir: pass the folder of "
            "the interrupted run (hydra.run.dir=outputs/train/<its folder>)"
            if given == "last"
            else "pass the checkpoint of the run to resume (RUN/checkpoints/last.ckpt)"
        )
        raise FileNotFoundError(f"no checkpoint to resume at {path}; {hint}")
    return str(path)


def check_same_experiment(saved: dict[str, Any], this: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume a checkpoint whose run trained on other data (see :data:`RESUME_KEYS`).

    Args:
        saved: the checkpoint's ``run_info`` (what its run trained on).
        this: this run's ``run_info``.
        path: the checkpoint, for the message.

    Raises:
        ValueError: naming each differing setting with both values, and the two ways out.
    """
    differs = [
        f"{key}={saved[name]} (this run: {key}={this.get(name)})"
        for name, key in RESUME_KEYS.items()
        if name in saved and saved[name] != this.get(name)
    ]
    if differs:
        raise ValueError(
            f"cannot resume {path}: its run trained with {', '.join(differs)}. Resume with the "
            "checkpoint's settings, or start a new run (a new hydra.run.dir, without ckpt_path)"
        )
