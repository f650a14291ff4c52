"""Few-shot episodes: seeded training sampling, fixed test/validation lists, list files, sharding.

Seeding: every random draw comes from a ``numpy.random.SeedSequence`` built from the run's seed, a
stream tag and the indices that identify the draw (epoch, episode index, ...), never from global or
worker state. So a training episode is a pure function of ``(seed, epoch, index)``, and a fixed
episode list is a pure function of ``(source, shot, seed, n)``; neither depends on worker count,
rank or iteration order.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vrpsam.data.base import SPLITS, Episode, FewShotSource
from vrpsam.fileio import atomic_write_text

EPISODE_FILE_FORMAT = "vrpsam-episodes"
EPISODE_FILE_VERSION = 1
REQUIRED_META_KEYS = ("dataset", "fold", "split", "shot", "seed", "n")

# Stream tags keep the generators of different purposes independent even when they share a seed.
_TRAIN_STREAM = 1
_FIXED_STREAM = 2


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _check_seed(seed: int) -> None:
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")


def _class_pools(source: FewShotSource) -> dict[int, list[str]]:
    """Sorted, duplicate-free image lists of the source's classes (empty for a missing class)."""
    by_class = source.image_ids_by_class()
    return {c: sorted(set(by_class.get(c, ()))) for c in source.classes}


def _draw_references(
    pool: Sequence[str], target_id: str, shot: int, rng: np.random.Generator
) -> tuple[str, ...]:
    """``shot`` distinct images of ``pool`` other than ``target_id``, without rejection loops."""
    others = [image_id for image_id in pool if image_id != target_id]
    picks = rng.choice(len(others), size=shot, replace=False)
    return tuple(others[i] for i in picks)


class TrainingEpisodeSampler:
    """Training episodes as a pure function of ``(epoch, index)``, per the official recipe.

    The official loader walks the split's images in a shuffled order, takes each as the target,
    picks a class present in it and draws references of that class. Here epoch ``e`` walks a
    permutation of the target images seeded by ``(seed, e, cycle)`` (``cycle = index // n_targets``
    when an epoch is longer than the image list), picks a class uniformly among the image's eligible
    classes and draws ``shot`` distinct references of that class other than the target, all from a
    generator seeded by ``(seed, epoch, index)``.

    Classes with fewer than ``shot + 1`` images cannot give an episode and are left out with a
    warning; images whose classes are all left out are not used as targets.

    Args:
        source: the training split.
        shot: references per episode.
        seed: the run's seed (non-negative).

    Raises:
        ValueError: ``shot < 1`` or no class has ``shot + 1`` images.
    """

    def __init__(self, *, source: FewShotSource, shot: int, seed: int) -> None:
        if shot < 1:
            raise ValueError(f"shot must be >= 1, got {shot}.")
        _check_seed(seed)
        self.source = source
        self.shot = shot
        self.seed = int(seed)
        pools = _class_pools(source)
        where = f"{source.name} fold {source.fold} {source.split}"
        small = {c: len(p) for c, p in pools.items() if len(p) < shot + 1}
        self.pools = {c: p for c, p in pools.items() if c not in small}
        if not self.pools:
            raise ValueError(
                f"{where}: no class has shot + 1 = {shot + 1} images (class: images {small}), "
                "so no training episode can be drawn."
            )
        if small:
            warnings.warn(
                f"{where}: classes {small} (class: images) have fewer than shot + 1 = {shot + 1} "
                "images and are left out of training episodes.",
                stacklevel=2,
            )
        classes_of: dict[str, list[int]] = {}
        for class_id in sorted(self.pools):
            for image_id in self.pools[class_id]:
                classes_of.setdefault(image_id, []).append(class_id)
        self.target_ids = sorted(classes_of)
        self.classes_of = classes_of
        self._permutation_key: tuple[int, int] | None = None
        self._permutation = np.arange(0)

    def __len__(self) -> int:
        """Number of distinct target images (the official epoch length)."""
        return len(self.target_ids)

    def _target_order(self, epoch: int, cycle: int) -> np.ndarray:
        # One permutation per (epoch, cycle); cached because consecutive indices share it.
        if self._permutation_key != (epoch, cycle):
            rng = _rng(self.seed, _TRAIN_STREAM, 0, epoch, cycle)
            self._permutation = rng.permutation(len(self.target_ids))
            self._permutation_key = (epoch, cycle)
        return self._permutation

    def episode(self, epoch: int, index: int) -> Episode:
        """The training episode number ``index`` of ``epoch`` (both non-negative)."""
        if epoch < 0 or index < 0:
            raise ValueError(f"epoch and index must be non-negative, got {epoch}, {index}.")
        cycle, position = divmod(index, len(self.target_ids))
        target_id = self.target_ids[int(self._target_order(epoch, cycle)[position])]
        rng = _rng(self.seed, _TRAIN_STREAM, 1, epoch, index)
        candidates = self.classes_of[target_id]
        class_id = candidates[int(rng.integers(len(candidates)))]
        references = _draw_references(self.pools[class_id], target_id, self.shot, rng)
        return Episode(target_id=target_id, class_id=class_id, reference_ids=references)


def make_test_episodes(
    source: FewShotSource,
    *,
    shot: int,
    seed: int,
    n: int = 1000,
    skip_small_classes: bool = False,
) -> list[Episode]:
    """Draw a fixed list of ``n`` episodes from ``source``, balanced over its classes.

    Class-balancing rule (each class gets a fair share, unlike hsnet, whose share follows the
    class's number of images): the classes are put in a seeded random order and episode ``i`` takes
    class ``order[i % C]``, so every class gets ``n // C`` or ``n // C + 1`` episodes and every
    prefix or interleaved shard of the list stays balanced. Within a class, targets walk a seeded
    permutation of the class's images and start over when it is exhausted (hsnet cycles over its
    image list the same way), so no image is a target twice before every image of the class has been
    one. References are ``shot`` distinct images of the class other than the target.

    Args:
        source: the split to draw from (``test`` for novel classes, ``val`` for model selection).
        shot: references per episode.
        seed: the seed of the list (non-negative); the same arguments always give the same list.
        n: number of episodes.
        skip_small_classes: leave out classes with fewer than ``shot + 1`` images with a warning
            instead of raising (mIoU over the remaining classes is then not comparable with the
            protocol).

    Returns:
        The episodes, in order.

    Raises:
        ValueError: ``shot < 1``, ``n < 1``, or a class with fewer than ``shot + 1`` images (unless
            skipped), or no usable class.
    """
    if shot < 1:
        raise ValueError(f"shot must be >= 1, got {shot}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    _check_seed(seed)
    where = f"{source.name} fold {source.fold} {source.split}"
    pools = _class_pools(source)
    small = {c: len(p) for c, p in pools.items() if len(p) < shot + 1}
    if small and not skip_small_classes:
        raise ValueError(
            f"{where}: classes {small} (class: images) have fewer than shot + 1 = {shot + 1} "
            "images, so they cannot give an episode with distinct reference and target images. "
            "Check the data (see `vrpsam-data verify`) or use a smaller shot."
        )
    if small:
        warnings.warn(
            f"{where}: classes {small} (class: images) have fewer than shot + 1 = {shot + 1} "
            "images and are left out of the episode list.",
            stacklevel=2,
        )
    classes = sorted(c for c in pools if c not in small)
    if not classes:
        raise ValueError(
            f"{where}: no class with shot + 1 = {shot + 1} images to draw episodes from."
        )
    split_tag = SPLITS.index(source.split) if source.split in SPLITS else len(SPLITS)
    # Neither n nor shot enters the seed: a shorter list is a prefix of a longer one, and 1-shot and
    # 5-shot lists share their classes and targets.
    rng = _rng(seed, _FIXED_STREAM, split_tag)
    order = [classes[i] for i in rng.permutation(len(classes))]
    targets = {c: [pools[c][i] for i in rng.permutation(len(pools[c]))] for c in order}
    seen = dict.fromkeys(order, 0)
    episodes = []
    for i in range(n):
        class_id = order[i % len(order)]
        target_id = targets[class_id][seen[class_id] % len(targets[class_id])]
        seen[class_id] += 1
        references = _draw_references(pools[class_id], target_id, shot, rng)
        episodes.append(Episode(target_id=target_id, class_id=class_id, reference_ids=references))
    return episodes


def make_validation_episodes(
    source: FewShotSource, *, shot: int, seed: int, n: int = 1000
) -> list[Episode]:
    """Episodes for model selection, drawn from the base-class images of a ``val`` source.

    Same rule as :func:`make_test_episodes`; base classes with too few held-out images are left out
    with a warning rather than failing the run, since validation only ranks checkpoints.
    """
    if source.split != "val":
        raise ValueError(
            f"Validation episodes are drawn from a 'val' source (held-out base-class images), got "
            f"split {source.split!r}; selecting on test episodes leaks the novel classes."
        )
    return make_test_episodes(source, shot=shot, seed=seed, n=n, skip_small_classes=True)


def shard_indices(n: int, rank: int, world_size: int) -> range:
    """Indices of the episodes of ``rank``: interleaved, ``rank, rank + world_size, ...``.

    Interleaving keeps each rank's share class-balanced (the lists are class round-robin). The union
    over ranks is exactly ``range(n)`` without duplicates; shard sizes differ by at most one.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"Need 0 <= rank < world_size, got rank={rank}, world_size={world_size}.")
    return range(rank, n, world_size)


def shard_episodes(episodes: Sequence[Episode], rank: int, world_size: int) -> list[Episode]:
    """This rank's part of ``episodes`` (see :func:`shard_indices`), without padding duplicates."""
    return [episodes[i] for i in shard_indices(len(episodes), rank, world_size)]


def _episode_to_json(episode: Episode) -> dict[str, Any]:
    return {
        "class_id": int(episode.class_id),
        "reference_ids": list(episode.reference_ids),
        "target_id": episode.target_id,
    }


def _encode(episodes: Sequence[Episode], meta: Mapping[str, Any]) -> str:
    """Sorted keys, fixed separators, one episode per line (readable diffs), trailing newline."""
    separators = (", ", ": ")
    header = {"format": EPISODE_FILE_FORMAT, "meta": dict(meta), "version": EPISODE_FILE_VERSION}
    lines = [
        json.dumps(_episode_to_json(e), sort_keys=True, separators=separators) for e in episodes
    ]
    body = "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"
    # "episodes" sorts before the header keys, so the document's keys stay in sorted order.
    rest = json.dumps(header, sort_keys=True, separators=separators)[1:]
    return '{"episodes": ' + body + ", " + rest + "\n"


def save_episodes(
    path: str | os.PathLike[str], episodes: Sequence[Episode], meta: Mapping[str, Any]
) -> Path:
    """Write an episode list file: JSON, byte-identical for equal inputs, replaced atomically.

    Args:
        path: destination; parent folders are created.
        episodes: the list to store.
        meta: must hold ``dataset``, ``fold``, ``split``, ``shot``, ``seed``, ``n`` (JSON values);
            ``n`` must equal ``len(episodes)``. More keys are kept.

    Returns:
        The path written.
    """
    missing = [key for key in REQUIRED_META_KEYS if key not in meta]
    if missing:
        raise ValueError(f"Episode list meta lacks {missing}; required: {REQUIRED_META_KEYS}.")
    if meta["n"] != len(episodes):
        raise ValueError(f"meta n={meta['n']} but {len(episodes)} episodes were given.")
    return atomic_write_text(path, _encode(episodes, meta))


def load_episodes(path: str | os.PathLike[str]) -> tuple[list[Episode], dict[str, Any]]:
    """Read an episode list file written by :func:`save_episodes`.

    Returns:
        ``(episodes, meta)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an episode list, an unknown version, or malformed content (the message says
            what).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); expected an episode list."
        ) from error
    if not isinstance(document, dict) or document.get("format") != EPISODE_FILE_FORMAT:
        raise ValueError(
            f"{path} is not a {EPISODE_FILE_FORMAT!r} file (no matching 'format' key)."
        )
    if document.get("version") != EPISODE_FILE_VERSION:
        raise ValueError(
            f"{path} has episode list version {document.get('version')!r}; this vrpsam reads "
            f"version {EPISODE_FILE_VERSION}."
        )
    meta = document.get("meta")
    if not isinstance(meta, dict) or any(key not in meta for key in REQUIRED_META_KEYS):
        raise ValueError(f"{path}: 'meta' must be an object with keys {REQUIRED_META_KEYS}.")
    raw = document.get("episodes")
    if not isinstance(raw, list):
        raise ValueError(f"{path}: 'episodes' must be a list.")
    episodes = []
    for i, item in enumerate(raw):
        try:
            references = tuple(str(r) for r in item["reference_ids"])
            episode = Episode(str(item["target_id"]), int(item["class_id"]), references)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: episode {i} is malformed: {item!r}.") from error
        if len(references) != meta["shot"] or episode.target_id in references:
            raise ValueError(
                f"{path}: episode {i} needs {meta['shot']} references other than its target: "
                f"{item!r}."
            )
        episodes.append(episode)
    if len(episodes) != meta["n"]:
        raise ValueError(f"{path}: meta says n={meta['n']} but the file holds {len(episodes)}.")
    return episodes, meta
