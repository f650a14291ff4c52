"""Aggregating an evaluation over seeds: mean ± standard deviation, per-class means."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(seeds: Sequence[int], runs: Sequence[dict]) -> dict:
    """The across-seed summary of per-seed results (percent, as :class:`FewShotModule` gives).

    Args:
        seeds: the seeds, in order.
        runs: per seed: ``miou``, ``fbiou``, ``class_ids``, ``per_class_iou`` (None for a class
            without episodes), ``episodes``, ``seconds_per_episode`` and optionally
            ``other_class_share``.
    """
    first = runs[0]
    miou, miou_std = _mean_std([r["miou"] for r in runs])
    fbiou, fbiou_std = _mean_std([r["fbiou"] for r in runs])
    per_class = [
        None if any(r["per_class_iou"][i] is None for r in runs)
        else statistics.fmean(r["per_class_iou"][i] for r in runs)
        for i in range(len(first["class_ids"]))
    ]  # fmt: skip
    share = [r["other_class_share"] for r in runs if r.get("other_class_share") is not None]
    return {
        "seed": seeds[0] if len(seeds) == 1 else list(seeds),
        "seeds": list(seeds),
        "episodes": first["episodes"],
        "miou": miou,
        "miou_std": miou_std,
        "fbiou": fbiou,
        "fbiou_std": fbiou_std,
        "per_seed": [
            {"seed": s, "miou": r["miou"], "fbiou": r["fbiou"]}
            for s, r in zip(seeds, runs, strict=True)
        ],
        "class_ids": first["class_ids"],
        "per_class_iou": per_class,
        "classes_scored": [
            c for c, v in zip(first["class_ids"], per_class, strict=True) if v is not None
        ],
        "seconds_per_episode": statistics.fmean(r["seconds_per_episode"] for r in runs),
        # Percent of the predicted foreground on objects of other classes (sources that know them).
        "other_class_share": statistics.fmean(share) if len(share) == len(runs) else None,
        **_negatives(runs),
    }


def _negatives(runs: Sequence[dict]) -> dict:
    """Means of the false-positive figures of negative-episode runs (``eval.negatives=true``)."""
    keys = ("negative_fp_rate", "negative_area")
    if not all(key in r for r in runs for key in keys):
        return {}
    return {key: statistics.fmean(r[key] for r in runs) for key in keys}


def single_seed(value: Any, why: str) -> int:
    """``eval.seed`` for an evaluation that takes one seed: an int, or a list of one; a longer
    list is refused with ``why`` (what the seed fixes there)."""
    from omegaconf import ListConfig

    if isinstance(value, list | tuple | ListConfig):
        if len(value) != 1:
            raise ValueError(f"{why}, got eval.seed={list(value)}")
        value = value[0]
    return int(value)
