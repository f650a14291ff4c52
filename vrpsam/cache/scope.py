"""What a feature cache was built for: the folds, shots and splits whose images it holds.

An image's cached features do not depend on the fold or the shot, so one cache folder can serve
several folds: ``vrpsam-cache`` run once per fold adds the images the cache lacks and records the
fold here. Which images a run reads does depend on them (a fold's classes; on LVIS-92i the shot
too), so a run of a fold the cache was never built for is refused when the cache is opened, naming
both folds, instead of failing at its first missing image with a vaguer message.

A scope is ``{"fold": int, "shot": int, "splits": [str, ...]}``; the manifest's ``built_for`` is a
list of scopes, one per (fold, shot), with the union of the splits built for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vrpsam.cache.signature import CacheMismatchError


def scope(fold: int, shot: int, splits: Sequence[str] = ()) -> dict:
    return {"fold": int(fold), "shot": int(shot), "splits": sorted(set(splits))}


def merged(built_for: Sequence[dict], new: dict) -> list[dict]:
    """``built_for`` with ``new`` added (its splits joined to those of the same fold and shot)."""
    by_key = {(s["fold"], s["shot"]): set(s["splits"]) for s in built_for}
    by_key.setdefault((new["fold"], new["shot"]), set()).update(new["splits"])
    return [scope(fold, shot, splits) for (fold, shot), splits in sorted(by_key.items())]


def describe(built_for: Sequence[dict]) -> str:
    """E.g. ``fold 2 with shot 1 (splits test, train, val)``; several joined by "; "."""
    return "; ".join(
        f"fold {s['fold']} with shot {s['shot']} (splits {', '.join(s['splits']) or 'none'})"
        for s in built_for
    )


def check_fold(built_for: Sequence[dict], run: dict, where: Path) -> None:
    """Refuse a cache that was never built for the run's fold (a cache of an older vrpsam, which
    records no ``built_for``, is not checked).

    Args:
        built_for: the manifest's scopes.
        run: the run's scope (its splits may be empty).
        where: the cache's folder, ``<cache.dir>/<kind>``.
    """
    folds = sorted({s["fold"] for s in built_for})
    if not folds or run["fold"] in folds:
        return
    built = f"fold {folds[0]}" if len(folds) == 1 else f"folds {', '.join(map(str, folds))}"
    raise CacheMismatchError(
        f"the feature cache at {where} was built for {built} and this run asks for fold "
        f"{run['fold']} (data.fold={run['fold']}): the images of fold "
        f"{run['fold']} are not in it. Add them by running vrpsam-cache with this run's settings "
        f"(data.fold={run['fold']}, cache.dir={where.parent}; the cached images are kept), or "
        f"point cache.dir at a cache built for fold {run['fold']}, or turn the cache off with "
        "cache.dir=null."
    )


def missing_image_message(
    image_id: str, where: Path, images: int, built_for: Sequence[dict], run: dict | None
) -> str:
    """Why ``image_id`` is not in the cache, as far as the manifest can tell, and the fix."""
    head = f"image {image_id!r} is not in the feature cache at {where} ({images} images"
    fix = (
        f"run vrpsam-cache again with this run's settings and cache.dir={where.parent} to add "
        "the missing images (the cached ones are kept), or turn the cache off with cache.dir=null"
    )
    if not built_for or run is None:
        return f"{head}): the dataset changed since it was built; {fix}"
    head += f", built for {describe(built_for)}"
    if not any(s["fold"] == run["fold"] and s["shot"] == run["shot"] for s in built_for):
        return (
            f"{head}) and this run asks for fold {run['fold']} with shot {run['shot']}, whose "
            f"classes and images can differ (data.shot, eval.shot); {fix}"
        )
    return (
        f"{head}): this run reads an image the cache was not built with: another split "
        f"(cache.splits), or a dataset or class threshold that changed since; {fix}"
    )
