"""Which episodes a run sees: seeded training sampling and the fixed test/validation lists.

Seeding: every random draw comes from a ``numpy.random.SeedSequence`` built from the run's seed, a
stream tag and the indices that identify the draw (epoch, episode index, ...), never from global or
worker state. So a training episode is a pure function of ``(seed, epoch, index)``, and a fixed
episode list is a pure function of ``(source, rule, shot, seed, n)``; neither depends on worker
count, rank or iteration order. Lists are prefix-stable (a shorter list is a prefix of a longer
one) and, except for ``balanced``, their targets and classes do not depend on the shot.

The rules (:mod:`vrpsam.engine.protocol` says which protocol uses which):

* training negatives (``negative_share`` > 0, off in the paper): that share of training episodes
  keep their references but take a target without the class (an empty ground truth), so a model
  learns to answer "not here"; test negatives (:func:`make_negative_episodes`) do the same to a
  fixed list, to measure false positives.
* training ``image``: walk a seeded permutation of the training images; the class is one of the
  image's listed classes. ``image_present``: the same over every class present in the image at any
  size (the official PASCAL loader). ``class``: the class uniformly, then one of its images (the
  official and hsnet COCO loaders).
* test ``balanced``: class round-robin, each class an equal share; ``pairs``: the (image, class)
  test pairs in list order, cycling, any object size (hsnet); ``images``: the test images in list
  order, cycling, one of the present novel classes drawn per episode (the official PASCAL loader);
  ``uniform``: class uniformly, then target (official and hsnet COCO).

References are always ``shot`` distinct listed images of the class other than the target. A class
that cannot give an episode (fewer than ``shot`` listed images besides the target) is left out with
one warning naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from vrpsam.data.base import SPLITS, Episode, FewShotSource

TRAIN_RULES = ("image", "image_present", "class")
TEST_RULES = ("balanced", "pairs", "images", "uniform")

# Stream tags keep the generators of different purposes independent even when they share a seed.
_TRAIN_STREAM = 1
_FIXED_STREAM = 2
_NEGATIVE_STREAM = 4


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _check(shot: int, seed: int) -> None:
    if shot < 1:
        raise ValueError(f"shot must be >= 1, got {shot}.")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")


def _where(source: FewShotSource) -> str:
    return f"{source.name} fold {source.fold} {source.split}"


def _names(source: FewShotSource, classes) -> str:
    return ", ".join(f"{c} ({source.class_name(c)})" for c in sorted(classes))


def class_pools(source: FewShotSource, shot: int) -> tuple[dict[int, list[str]], dict[int, int]]:
    """Sorted listed images of every class that can give an episode, and the classes that cannot.

    Returns:
        ``(pools, small)``: pools of the classes with at least ``shot + 1`` listed images; ``small``
        maps the other classes to their number of images.
    """
    by_class = source.image_ids_by_class()
    pools = {c: sorted(set(by_class.get(c, ()))) for c in source.classes}
    small = {c: len(p) for c, p in pools.items() if len(p) < shot + 1}
    return {c: p for c, p in pools.items() if c not in small}, small


def warn_skipped(source: FewShotSource, small: dict[int, int], shot: int, what: str) -> None:
    """One warning naming the classes left out of ``what`` (training, the test list, ...)."""
    if small:
        warnings.warn(
            f"{_where(source)}: classes {_names(source, small)} have fewer than shot + 1 = "
            f"{shot + 1} images ({small}) and are left out of {what}; mIoU then averages the "
            "other classes only (see `vrpsam-data verify`).",
            stacklevel=3,
        )


def _references(
    pool: Sequence[str], target_id: str, shot: int, rng: np.random.Generator
) -> tuple[str, ...]:
    """``shot`` distinct images of ``pool`` other than ``target_id``, without rejection loops."""
    others = [image_id for image_id in pool if image_id != target_id]
    picks = rng.choice(len(others), size=shot, replace=False)
    return tuple(others[i] for i in picks)


def _can_form(pool: Sequence[str], target_id: str, shot: int) -> bool:
    return len(pool) - (target_id in pool) >= shot


def _present(source: FewShotSource, image_id: str, pools, shot: int) -> list[int]:
    """The classes of ``source`` present in the image at any size that can give an episode."""
    present = source.classes_present(image_id)
    return [c for c in sorted(present) if c in pools and _can_form(pools[c], image_id, shot)]


class TrainingEpisodeSampler:
    """Training episodes as a pure function of ``(epoch, index)`` (rules: module docstring).

    The epoch length is the number of distinct target images, as in the official loaders.

    Args:
        source: the training split.
        shot: references per episode.
        seed: the run's seed (non-negative).
        rule: ``image``, ``image_present`` or ``class``.
        negative_share: share of episodes whose target is an image without the class (0: none,
            the paper's training; the draw is skipped entirely then, so episodes stay as before).

    Raises:
        ValueError: ``shot < 1``, an unknown rule, or no class has ``shot + 1`` images.
    """

    def __init__(
        self,
        *,
        source: FewShotSource,
        shot: int,
        seed: int,
        rule: str = "image",
        negative_share: float = 0.0,
    ) -> None:
        _check(shot, seed)
        if rule not in TRAIN_RULES:
            raise ValueError(f"training rule must be one of {', '.join(TRAIN_RULES)}, got {rule!r}")
        if not 0.0 <= negative_share < 1.0:
            raise ValueError(f"negative_share must be in [0, 1), got {negative_share}")
        self.source, self.shot, self.seed, self.rule = source, shot, int(seed), rule
        self.negative_share = float(negative_share)
        self._absent: dict[int, list[str]] = {}
        self.pools, small = class_pools(source, shot)
        if not self.pools:
            raise ValueError(
                f"{_where(source)}: no class has shot + 1 = {shot + 1} images (class: images "
                f"{small}), so no training episode can be drawn."
            )
        warn_skipped(source, small, shot, "training episodes")
        classes_of: dict[str, list[int]] = {}
        for class_id in sorted(self.pools):
            for image_id in self.pools[class_id]:
                classes_of.setdefault(image_id, []).append(class_id)
        self.target_ids = sorted(classes_of)
        self.classes_of = classes_of
        self.classes = sorted(self.pools)
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
        rng = _rng(self.seed, _TRAIN_STREAM, 1, epoch, index)
        if self.rule == "class":
            class_id = self.classes[int(rng.integers(len(self.classes)))]
            pool = self.pools[class_id]
            target_id = pool[int(rng.integers(len(pool)))]
        else:
            cycle, position = divmod(index, len(self.target_ids))
            target_id = self.target_ids[int(self._target_order(epoch, cycle)[position])]
            candidates = self.classes_of[target_id]
            if self.rule == "image_present":
                # Any size counts, as in the official loader; listed classes always qualify.
                candidates = _present(self.source, target_id, self.pools, self.shot) or candidates
            class_id = candidates[int(rng.integers(len(candidates)))]
        references = _references(self.pools[class_id], target_id, self.shot, rng)
        if self.negative_share and rng.random() < self.negative_share:
            # A negative: the references stay, the target is an image without the class.
            target_id = self._negative_target(class_id, rng) or target_id
        return Episode(target_id=target_id, class_id=class_id, reference_ids=references)

    def _negative_target(self, class_id: int, rng: np.random.Generator) -> str | None:
        """A training image in which ``class_id`` has no pixel, or None when every image has."""
        if class_id not in self._absent:
            self._absent[class_id] = absent_images(self.source, self.target_ids, class_id)
        candidates = self._absent[class_id]
        return candidates[int(rng.integers(len(candidates)))] if candidates else None


def absent_images(source: FewShotSource, image_ids: Sequence[str], class_id: int) -> list[str]:
    """The images of ``image_ids`` in which ``class_id`` has no pixel (any size counts)."""
    return [i for i in image_ids if class_id not in source.classes_present(i)]


def make_negative_episodes(
    source: FewShotSource, episodes: Sequence[Episode], *, seed: int
) -> list[Episode]:
    """The episodes with each target replaced by a seeded image of ``source`` without the
    episode's class (the references stay): the model should predict nothing. Episodes whose
    class is in every image are left out.

    A pure function of the list and the seed, like the list itself.
    """
    order = list(source.image_order())
    absent: dict[int, list[str]] = {}
    negatives = []
    for i, episode in enumerate(episodes):
        if episode.class_id not in absent:
            absent[episode.class_id] = absent_images(source, order, episode.class_id)
        candidates = [t for t in absent[episode.class_id] if t not in episode.reference_ids]
        if not candidates:
            continue
        rng = _rng(seed, _NEGATIVE_STREAM, i)
        target = candidates[int(rng.integers(len(candidates)))]
        negatives.append(Episode(target, episode.class_id, episode.reference_ids))
    return negatives


def make_test_episodes(
    source: FewShotSource, *, shot: int, seed: int, n: int | None = 1000, rule: str = "balanced"
) -> list[Episode]:
    """Draw a fixed list of ``n`` episodes from ``source`` with a test rule (module docstring).

    Args:
        source: the split to draw from (``test`` for novel classes, ``val`` for model selection).
        shot: references per episode.
        seed: the seed of the list (non-negative); the same arguments always give the same list.
        n: number of episodes; None: one pass over the test items of the ``pairs`` or ``images``
            rule (every test image once as the target: FSS-1000's 2400 one-shot episodes).
        rule: ``balanced``, ``pairs``, ``images`` or ``uniform``.

    Returns:
        The episodes, in order.

    Raises:
        ValueError: ``shot < 1``, ``n < 1``, an unknown rule, or no class can give an episode.
    """
    _check(shot, seed)
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if rule not in TEST_RULES:
        raise ValueError(f"test rule must be one of {', '.join(TEST_RULES)}, got {rule!r}")
    if n is None and rule not in ("pairs", "images"):
        raise ValueError(
            f"n=None (one pass over the test images) needs the pairs or images rule, not {rule!r}; "
            "give a number of episodes (eval.episodes=1000)"
        )
    pools, small = class_pools(source, shot)
    warn_skipped(source, small, shot, "the episode list")
    if not pools:
        raise ValueError(
            f"{_where(source)}: no class with shot + 1 = {shot + 1} images to draw episodes from; "
            "check the data (`vrpsam-data verify`) or use a smaller shot."
        )
    split_tag = SPLITS.index(source.split) if source.split in SPLITS else len(SPLITS)
    if rule == "balanced":
        return _balanced(pools, shot, _rng(seed, _FIXED_STREAM, split_tag), n)
    keys = (seed, _FIXED_STREAM, split_tag, 1 + TEST_RULES.index(rule))
    if rule == "uniform":
        classes = sorted(pools)
        episodes = []
        for i in range(n):
            rng = _rng(*keys, i)
            class_id = classes[int(rng.integers(len(classes)))]
            target_id = pools[class_id][int(rng.integers(len(pools[class_id])))]
            refs = _references(pools[class_id], target_id, shot, rng)
            episodes.append(Episode(target_id, class_id, refs))
        return episodes
    order = source.image_order()
    present = {image_id: _present(source, image_id, pools, shot) for image_id in order}
    if rule == "pairs":
        items = [(image_id, c) for image_id in order for c in present[image_id]]
    else:
        items = [(image_id, None) for image_id in order if present[image_id]]
    if not items:
        raise ValueError(f"{_where(source)}: no test image shows a class that can give an episode.")
    n = len(items) if n is None else n
    episodes = []
    for i in range(n):
        rng = _rng(*keys, i)
        target_id, class_id = items[i % len(items)]
        if class_id is None:
            candidates = present[target_id]
            class_id = candidates[int(rng.integers(len(candidates)))]
        refs = _references(pools[class_id], target_id, shot, rng)
        episodes.append(Episode(target_id, class_id, refs))
    return episodes


def _balanced(
    pools: dict[int, list[str]], shot: int, rng: np.random.Generator, n: int
) -> list[Episode]:
    """Classes in a seeded order, episode ``i`` takes class ``order[i % C]``; within a class the
    targets walk a seeded permutation of its images. Every class gets ``n // C`` or ``n // C + 1``
    episodes and every prefix or interleaved shard stays balanced."""
    classes = sorted(pools)
    order = [classes[i] for i in rng.permutation(len(classes))]
    targets = {c: [pools[c][i] for i in rng.permutation(len(pools[c]))] for c in order}
    seen = dict.fromkeys(order, 0)
    episodes = []
    for i in range(n):
        class_id = order[i % len(order)]
        target_id = targets[class_id][seen[class_id] % len(targets[class_id])]
        seen[class_id] += 1
        episodes.append(Episode(target_id, class_id, _references(pools[class_id], target_id,
                                                                 shot, rng)))  # fmt: skip
    return episodes


def make_validation_episodes(
    source: FewShotSource, *, shot: int, seed: int, n: int = 1000
) -> list[Episode]:
    """Episodes for model selection, drawn from the base-class images of a ``val`` source with the
    ``balanced`` rule (a hold-out of our own; no literature convention applies)."""
    if source.split != "val":
        raise ValueError(
            f"Validation episodes are drawn from a 'val' source (held-out base-class images), got "
            f"split {source.split!r}; selecting on test episodes leaks the novel classes."
        )
    return make_test_episodes(source, shot=shot, seed=seed, n=n, rule="balanced")
