"""A torch ``Dataset`` of few-shot episodes, as flat dicts in our vocabulary (hsnet style).

Two modes:

- fixed list (validation/test): a given episode list, each item identified by its index in the full
  list (so annotations stay the same whatever the shard), with test-time annotation simulation;
- sampled (training): ``episodes_per_epoch`` episodes drawn by a :class:`TrainingEpisodeSampler`,
  with training-time annotation simulation; :meth:`EpisodeDataset.set_epoch` or ``(epoch, index)``
  keys (see :class:`EpisodeIndexSampler`) vary them per epoch.

Annotation randomness is seeded by ``(seed, mode, epoch, episode index, reference index)``, never by
worker state, so batches do not depend on the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vrpsam.data.annotations import ANNOTATION_KINDS, annotation_rng, simulate_annotation
from vrpsam.data.base import Episode, FewShotSource
from vrpsam.data.episodes import shard_indices
from vrpsam.data.sampling import TrainingEpisodeSampler
from vrpsam.data.transforms import ResizeNormalize, original_size

_ANNOTATION_STREAM = 3
_VARIABLE_SIZE_KEYS = ("target_mask_original", "target_others_original")


class EpisodeDataset(Dataset):
    """Few-shot episodes as flat dicts of tensors.

    Items (``S`` = transform size, ``k`` = shot, ``H, W`` = original target size):

    - ``target_image`` (3, S, S) float32, ImageNet-normalised;
    - ``target_mask`` (S, S) int64 in {0, 1, 255}, nearest-resized;
    - ``target_mask_original`` (H, W) int64 in {0, 1, 255}, for scoring at the original size;
    - ``target_others_original`` (H, W) bool: the target's objects of *other* classes, when the
      source can tell (``load_other_objects``), else absent; for the share of a prediction that
      falls on the wrong objects;
    - ``target_size`` (2,) int64, the original (H, W);
    - ``reference_images`` (k, 3, S, S) float32;
    - ``reference_masks`` (k, S, S) float32 in {0, 1}: simulated annotations
      (point/scribble/box/mask), drawn on the resized ground truth because the stroke presets are in
      512-pixel units;
    - ``reference_gt_masks`` (k, S, S) int64 in {0, 1, 255};
    - ``class_id`` and ``episode_index`` () int64; ``target_id`` str; ``reference_ids`` tuple of
      str.

    Args:
        source: where images and masks are read.
        transform: resize/normalisation.
        annotation: reference annotation kind, one of :data:`ANNOTATION_KINDS`.
        seed: seed of the annotation simulation (non-negative).
        episodes: fixed mode: the episodes of this dataset (e.g. one rank's shard).
        episode_indices: fixed mode: the index of each episode in the full list (defaults to
            ``range(len(episodes))``); it names the episode in outputs and seeds its annotations.
        sampler: sampled mode: draws episode ``(epoch, index)``.
        episodes_per_epoch: sampled mode: dataset length (defaults to the sampler's number of
            targets).
        scribble: test-time scribble mode (``per_episode`` or ``fixed``; see
            :func:`vrpsam.data.annotations.simulate_annotation`).
    """

    def __init__(
        self,
        *,
        source: FewShotSource,
        transform: ResizeNormalize,
        annotation: str = "mask",
        seed: int = 0,
        episodes: Sequence[Episode] | None = None,
        episode_indices: Sequence[int] | None = None,
        sampler: TrainingEpisodeSampler | None = None,
        episodes_per_epoch: int | None = None,
        scribble: str = "per_episode",
    ) -> None:
        if annotation not in ANNOTATION_KINDS:
            raise ValueError(
                f"Unknown annotation {annotation!r}; expected one of {ANNOTATION_KINDS}."
            )
        if (episodes is None) == (sampler is None):
            raise ValueError("Give exactly one of `episodes` (fixed list) or `sampler` (training).")
        self.source = source
        self.transform = transform
        self.annotation = annotation
        self.scribble = scribble
        self.seed = int(seed)
        self.epoch = 0
        self.sampler = sampler
        self.episodes = list(episodes) if episodes is not None else []
        if sampler is not None:
            self.training = True
            self.length = len(sampler) if episodes_per_epoch is None else int(episodes_per_epoch)
            self.episode_indices: list[int] = []
        else:
            self.training = False
            self.length = len(self.episodes)
            indices = range(self.length) if episode_indices is None else episode_indices
            self.episode_indices = [int(i) for i in indices]
            if len(self.episode_indices) != self.length:
                raise ValueError("episode_indices must have one entry per episode.")

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that integer keys draw training episodes from."""
        self.epoch = int(epoch)

    def episode(self, key: int | tuple[int, int]) -> tuple[Episode, int, int]:
        """Resolve a key to ``(episode, episode_index, epoch)``; keys as in :meth:`__getitem__`."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        if not 0 <= index < self.length:
            raise IndexError(f"Episode index {index} out of range for {self.length} episodes.")
        if self.sampler is not None:
            return self.sampler.episode(epoch, index), index, epoch
        # Fixed lists: annotations must not change between validation epochs.
        return self.episodes[index], self.episode_indices[index], 0

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Load episode ``key``: an index, or ``(epoch, index)`` in sampled mode."""
        episode, episode_index, epoch = self.episode(key)
        source, transform = self.source, self.transform
        image = source.load_image(episode.target_id)
        mask = _checked_mask(source, image, episode.target_id, episode.class_id)
        reference_images, reference_masks, reference_gt = [], [], []
        for j, reference_id in enumerate(episode.reference_ids):
            ref_image = source.load_image(reference_id)
            ref_mask = _checked_mask(source, ref_image, reference_id, episode.class_id)
            resized = _resize_reference_mask(transform, ref_mask, reference_id, episode.class_id)
            rng = annotation_rng(
                self.seed, _ANNOTATION_STREAM, int(self.training), epoch, episode_index, j
            )
            simulated = simulate_annotation(
                resized, self.annotation, rng=rng, training=self.training, scribble=self.scribble
            )
            reference_images.append(transform.image(ref_image))
            reference_masks.append(torch.from_numpy(simulated.astype(np.float32)))
            reference_gt.append(torch.from_numpy(resized.astype(np.int64)))
        others = getattr(source, "load_other_objects", None)
        extra = {}
        if others is not None and not self.training:
            extra["target_others_original"] = torch.from_numpy(
                np.asarray(others(episode.target_id, episode.class_id), dtype=bool)
            )
        return {
            **extra,
            "target_image": transform.image(image),
            "target_mask": transform.mask(mask),
            "target_mask_original": torch.from_numpy(mask.astype(np.int64)),
            "target_size": original_size(image),
            "reference_images": torch.stack(reference_images),
            "reference_masks": torch.stack(reference_masks),
            "reference_gt_masks": torch.stack(reference_gt),
            "class_id": torch.tensor(episode.class_id, dtype=torch.int64),
            "episode_index": torch.tensor(episode_index, dtype=torch.int64),
            "target_id": episode.target_id,
            "reference_ids": tuple(episode.reference_ids),
        }


def _checked_mask(
    source: FewShotSource, image: np.ndarray, image_id: str, class_id: int
) -> np.ndarray:
    mask = np.asarray(source.load_mask(image_id, class_id))
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"{source.name}: mask of {image_id!r} class {class_id} has shape {mask.shape}, "
            f"image has {image.shape[:2]}."
        )
    return mask


def _resize_reference_mask(
    transform: ResizeNormalize, mask: np.ndarray, image_id: str, class_id: int
) -> np.ndarray:
    """(S, S) uint8 reference ground truth, keeping small objects that nearest resizing loses."""
    resized = transform.mask_array(mask)
    if not (resized == 1).any():
        foreground = (mask == 1).astype(np.float32)
        if not foreground.any():
            raise ValueError(
                f"Reference {image_id!r} has no pixel of class {class_id}; the source's "
                "image_ids_by_class lists it for that class."
            )
        size = (transform.size, transform.size)
        covered = cv2.resize(foreground, size, interpolation=cv2.INTER_AREA) > 0
        resized = np.where(covered, 1, resized).astype(np.uint8)
    return resized


def collate_episodes(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch episode dicts: stack fixed-size tensors, keep variable-size ones and ids as lists.

    Args:
        samples: items of :class:`EpisodeDataset` with the same shot and size.

    Returns:
        The same keys; tensors gain a leading batch dimension B (``class_id`` (B,), ``target_size``
        (B, 2), ...), ``target_mask_original`` is a list of B (H_i, W_i) tensors, and ``target_id``
        / ``reference_ids`` are lists.
    """
    if not samples:
        raise ValueError("Cannot collate an empty list of episodes.")
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if key in _VARIABLE_SIZE_KEYS or not isinstance(values[0], torch.Tensor):
            batch[key] = values
        else:
            batch[key] = torch.stack(values)
    return batch


class EpisodeIndexSampler(Sampler):
    """Yields ``(epoch, index)`` keys for this rank's share of an epoch of sampled episodes.

    Keys carry the epoch, so workers need no state from the main process (persistent workers work
    too); Lightning calls :meth:`set_epoch` before each training epoch. Indices are interleaved
    across ranks (``rank, rank + world_size, ...``); with ``drop_uneven`` the epoch is cut to a
    multiple of ``world_size`` so every rank runs the same number of steps, which DDP training
    needs.

    Args:
        num_episodes: episodes per epoch over all ranks.
        rank: this process's rank.
        world_size: number of processes.
        drop_uneven: drop the last ``num_episodes % world_size`` episodes.
        same_on_every_rank: every rank yields rank 0's keys (the official COCO multi-GPU
            behaviour: ``protocol.rank_episodes=same``).
    """

    def __init__(
        self,
        *,
        num_episodes: int,
        rank: int = 0,
        world_size: int = 1,
        drop_uneven: bool = True,
        same_on_every_rank: bool = False,
    ) -> None:
        total = num_episodes - num_episodes % world_size if drop_uneven else num_episodes
        # The official COCO run drew its episodes from a global RNG seeded alike on every rank, so
        # all ranks trained on the same episodes; reproducing it means handing out rank 0's share.
        self.indices = shard_indices(total, 0 if same_on_every_rank else rank, world_size)
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, done: int) -> None:
        """Make the next pass over ``epoch`` start after its first ``done`` keys (a run resumed
        inside that epoch); a pass over another epoch starts at its beginning."""
        self._resume = (int(epoch), int(done))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        start = self._resume[1] if self._resume and self._resume[0] == epoch else 0
        self._resume = None
        return ((epoch, i) for i in self.indices[start:])

    def __len__(self) -> int:
        return len(self.indices)


class ResumableLoader(DataLoader):
    """The training loader over an :class:`EpisodeIndexSampler`, resumable inside an epoch.

    Lightning saves the ``state_dict`` of a loader that has one with every checkpoint and hands it
    back to ``load_state_dict`` when it resumes inside an epoch: here the epoch and the batches of
    it already handed out, so a resumed run trains on the rest of that epoch's batches, as the
    interrupted run would have. Iteration starts at the first ``next`` (a generator), after
    Lightning has set the sampler's epoch, also when worker processes prefetch indices.
    """

    sampler: EpisodeIndexSampler

    def __init__(self, dataset: EpisodeDataset, *, sampler: EpisodeIndexSampler, **kwargs: Any):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._epoch, self._batches = 0, 0
        self._resume: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        epoch = self.sampler.epoch
        done = self._resume[1] if self._resume and self._resume[0] == epoch else 0
        self._resume = None
        self.sampler.resume_at(epoch, done * int(self.batch_size or 1))
        self._epoch, self._batches = epoch, done
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches"]))
