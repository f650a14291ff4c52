"""Lightning DataModule for few-shot training, validation and testing."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import lightning as L
from torch.utils.data import DataLoader

from vrpsam.data.base import Episode, FewShotSource
from vrpsam.data.dataset import (
    EpisodeDataset,
    EpisodeIndexSampler,
    ResumableLoader,
    collate_episodes,
)
from vrpsam.data.episodes import load_episodes, save_episodes, shard_indices
from vrpsam.data.sampling import (
    TEST_RULES,
    TRAIN_RULES,
    TrainingEpisodeSampler,
    class_pools,
    make_negative_episodes,
    make_test_episodes,
    make_validation_episodes,
)
from vrpsam.data.transforms import ResizeNormalize

TEST_SPLITS = ("novel", "base")
"""What the test episodes test: the fold's novel classes, or its base classes (VRP-SAM Table 13)."""


class BaseSplit:
    """A fold's training split seen as a test split named ``base``: the base-class test of VRP-SAM
    Table 13 (pairs from the fold's training images of base classes). Everything but ``split``
    is the training source's."""

    split = "base"

    def __init__(self, train: FewShotSource) -> None:
        self._train = train

    def __getattr__(self, name: str) -> Any:
        if name == "_train":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._train, name)

    def __repr__(self) -> str:
        return f"BaseSplit({self._train!r})"


def _init_worker(worker_id: int) -> None:
    """Keep OpenCV single-threaded inside loader workers, which already run in parallel."""
    del worker_id
    cv2.setNumThreads(1)


def available_cpus() -> int:
    """The CPUs this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class FewShotDataModule(L.LightningDataModule):
    """Train / val / test episodes of one fold of a few-shot dataset.

    - train: ``train_episodes_per_epoch`` episodes per epoch drawn by a
      :class:`TrainingEpisodeSampler` (rule ``train_sampling``) from ``(seed, epoch, index)``, with
      training-time annotations.
    - val: :func:`make_validation_episodes` on the ``val`` source (held-out base-class images),
      drawn once from ``seed``; used for model selection. Skipped when there is no ``val`` source.
    - test: the list file ``test_episode_list`` if it exists (its own seed then seeds the
      annotations); otherwise :func:`make_test_episodes` (rule ``test_sampling``) with
      ``test_seed``, written to ``test_episode_list`` when a path is given.

    The sampling rules, the test scribbles, the hold-out and the rank sharding are switches of the
    run's protocol (:mod:`vrpsam.engine.protocol`); the entry points pass them in.

    Multi-GPU: val and test lists are split across ranks with :func:`shard_indices` (interleaved, no
    padding duplicates; sizes may differ by one, so reduce metric *sums* across ranks); every
    training epoch is cut to a multiple of the world size and interleaved across ranks. Rank and
    world size come from the attached trainer. Build the Trainer with
    ``use_distributed_sampler=False``, or Lightning replaces these samplers with a
    ``DistributedSampler`` that pads with duplicate episodes.

    Workers: nothing depends on worker state; every random draw is keyed by ``(seed, epoch, episode
    index)``, so batches are identical for any ``num_workers``.

    Args:
        sources: sources by split (``"train"``, ``"val"``, ``"test"``); any may be missing.
        source_factory: builds the source of a split on demand (used for splits not in ``sources``);
            it may raise ``FileNotFoundError`` for a split that does not exist (then that stage is
            skipped).
        shot: references per episode.
        annotation: reference annotation kind (``point``, ``scribble``, ``box``, ``mask``).
        image_size: side of the square network input.
        interpolation: image resize mode, ``"bilinear"`` or ``"area"``.
        batch_size: episodes per batch and process.
        num_workers: loader worker processes (capped at the CPUs this process may use).
        seed: seed of training sampling, training/validation annotations and the validation list.
        test_seed: seed of a generated test list (defaults to ``seed``).
        train_episodes_per_epoch: episodes per training epoch over all ranks (default: one per
            training image, as the official code).
        val_episodes: length of the validation list.
        test_episodes: length of a generated test list.
        test_episode_list: path of the test episode list file.
        pin_memory: passed to the loaders.
        persistent_workers: keep workers between epochs (safe: keys carry the epoch).
        val_split: ``"val"`` selects models on held-out base-class episodes; ``"test"`` restores
            the official code's selection on the test episodes (a leak of the novel classes; only
            for reproducing official numbers).
        train_sampling: training episode rule (:data:`~vrpsam.data.sampling.TRAIN_RULES`).
        test_sampling: test episode rule (:data:`~vrpsam.data.sampling.TEST_RULES`).
        test_scribble: ``per_episode`` or ``fixed`` (the official code's test scribbles).
        rank_episodes: ``unique`` shards training episodes across ranks; ``same`` gives every
            rank the same episodes (the official COCO multi-GPU run).
        negative_share: share of training episodes whose target lacks the class (an empty
            ground truth; 0 in the paper).
        test_negatives: test each episode of the list with its target replaced by a seeded image
            without the class (:func:`make_negative_episodes`): a false-positive test.
        test_split: ``novel`` tests the fold's novel classes; ``base`` tests its base classes on
            the fold's training images (VRP-SAM Table 13: 1000 fixed pairs), with the
            ``balanced`` rule whatever ``test_sampling`` says (the pairs are drawn at random).
    """

    def __init__(
        self,
        *,
        sources: Mapping[str, FewShotSource] | None = None,
        source_factory: Callable[[str], FewShotSource] | None = None,
        shot: int = 1,
        annotation: str = "mask",
        image_size: int = 512,
        interpolation: str = "bilinear",
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        test_seed: int | None = None,
        train_episodes_per_epoch: int | None = None,
        val_episodes: int = 1000,
        test_episodes: int = 1000,
        test_episode_list: str | os.PathLike[str] | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        val_split: str = "val",
        train_sampling: str = "image",
        test_sampling: str = "balanced",
        test_scribble: str = "per_episode",
        rank_episodes: str = "unique",
        test_split: str = "novel",
        negative_share: float = 0.0,
        test_negatives: bool = False,
    ) -> None:
        super().__init__()
        if sources is None and source_factory is None:
            raise ValueError("Give `sources` and/or `source_factory`.")
        self.sources = dict(sources or {})
        self.source_factory = source_factory
        self.shot = shot
        self.annotation = annotation
        self.transform = ResizeNormalize(size=image_size, interpolation=interpolation)
        self.batch_size = batch_size
        # More loader processes than CPUs only slow a run down (PyTorch warns about it); batches
        # are identical for any worker count, so capping changes no result.
        self.num_workers = min(num_workers, available_cpus())
        self.seed = seed
        self.test_seed = seed if test_seed is None else test_seed
        self.train_episodes_per_epoch = train_episodes_per_epoch
        self.val_episodes = val_episodes
        self.test_episodes = test_episodes
        self.test_episode_list = None if test_episode_list is None else Path(test_episode_list)
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and self.num_workers > 0
        if val_split not in ("val", "test"):
            raise ValueError(f"val_split must be 'val' or 'test', got {val_split!r}")
        self.val_split = val_split
        for key, value, allowed in (
            ("train_sampling", train_sampling, TRAIN_RULES),
            ("test_sampling", test_sampling, TEST_RULES),
            ("test_scribble", test_scribble, ("per_episode", "fixed")),
            ("rank_episodes", rank_episodes, ("unique", "same")),
            ("test_split", test_split, TEST_SPLITS),
        ):
            if value not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        self.train_sampling = train_sampling
        self.test_sampling = test_sampling
        self.test_scribble = test_scribble
        self.rank_episodes = rank_episodes
        self.test_split = test_split
        self.negative_share = float(negative_share)
        self.test_negatives = bool(test_negatives)
        self.train_dataset: EpisodeDataset | None = None
        self.val_dataset: EpisodeDataset | None = None
        self.test_dataset: EpisodeDataset | None = None
        self.test_episode_meta: dict[str, Any] | None = None

    @property
    def test_sampling_rule(self) -> str:
        """The rule of the test list: ``test_sampling``, or ``balanced`` for the base-class test."""
        return "balanced" if self.test_split == "base" else self.test_sampling

    def source(self, split: str) -> FewShotSource | None:
        """The source of ``split``, or None when there is none. Under ``test_split="base"`` the
        ``test`` source is the training split seen as split ``base``."""
        if split == "test" and self.test_split == "base":
            if "base" not in self.sources:
                train = self.source("train")
                self.sources["base"] = None if train is None else BaseSplit(train)  # type: ignore[assignment]
            return self.sources["base"]
        if split not in self.sources and self.source_factory is not None:
            try:
                self.sources[split] = self.source_factory(split)
            except FileNotFoundError:
                return None
        return self.sources.get(split)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        world = int(trainer.world_size)
        # Private in Lightning, hence the getattr: warn rather than pad silently.
        connector = getattr(trainer, "_accelerator_connector", None)
        if world > 1 and getattr(connector, "use_distributed_sampler", False):
            warnings.warn(
                "FewShotDataModule shards episodes itself; build the Trainer with "
                "use_distributed_sampler=False, or validation/test episodes get padded duplicates.",
                stacklevel=2,
            )
        return int(trainer.global_rank), world

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (``fit``, ``validate``, ``test`` or ``predict``)."""
        if stage in (None, "fit"):
            self.train_dataset = self._build_train()
        if stage in (None, "fit", "validate"):
            self.val_dataset = self._build_val()
        if stage in (None, "test", "predict"):
            self.test_dataset = self._build_test()

    def _build_train(self) -> EpisodeDataset:
        source = self.source("train")
        if source is None:
            raise ValueError(_no_source_message("Training", "train", self.source_factory))
        sampler = TrainingEpisodeSampler(
            source=source,
            shot=self.shot,
            seed=self.seed,
            rule=self.train_sampling,
            negative_share=self.negative_share,
        )
        return EpisodeDataset(
            source=source,
            transform=self.transform,
            annotation=self.annotation,
            seed=self.seed,
            sampler=sampler,
            episodes_per_epoch=self.train_episodes_per_epoch,
        )

    def _build_val(self) -> EpisodeDataset | None:
        if self.val_split == "test":
            return self._build_test()
        source = self.source("val")
        if source is None:
            return None
        episodes = make_validation_episodes(
            source, shot=self.shot, seed=self.seed, n=self.val_episodes
        )
        return self._fixed_dataset(source, episodes, seed=self.seed)

    def _build_test(self) -> EpisodeDataset:
        source = self.source("test")
        if source is None:
            raise ValueError(_no_source_message("Testing", "test", self.source_factory))
        path = self.test_episode_list
        if path is not None and path.exists():
            episodes, meta = load_episodes(path)
            self._check_meta(meta, source, path)
        else:
            episodes = make_test_episodes(
                source,
                shot=self.shot,
                seed=self.test_seed,
                n=self.test_episodes,
                rule=self.test_sampling_rule,
            )
            _, small = class_pools(source, self.shot)
            meta = {
                "dataset": source.name,
                "fold": source.fold,
                "split": source.split,
                "shot": self.shot,
                "seed": self.test_seed,
                "n": len(episodes),
                "sampling": self.test_sampling_rule,
                "classes": sorted({e.class_id for e in episodes}),
                "classes_skipped": sorted(small),
            }
            if path is not None and self._rank_and_world()[0] == 0:
                save_episodes(path, episodes, meta)
        if self.test_negatives:
            episodes = make_negative_episodes(source, episodes, seed=int(meta["seed"]))
            meta = {**meta, "negatives": True, "n_negatives": len(episodes)}
        self.test_episode_meta = meta
        return self._fixed_dataset(source, episodes, seed=int(meta["seed"]))

    def _check_meta(self, meta: Mapping[str, Any], source: FewShotSource, path: Path) -> None:
        expected = {
            "dataset": source.name,
            "fold": source.fold,
            "split": source.split,
            "shot": self.shot,
            "sampling": self.test_sampling_rule,
        }
        # Lists written before the sampling rules existed were drawn with the balanced rule.
        found = {**meta, "sampling": meta.get("sampling", "balanced")}
        wrong = {k: (found[k], v) for k, v in expected.items() if found[k] != v}
        if wrong:
            raise ValueError(
                f"Episode list {path} does not match this run (key: (file, run)): {wrong}. "
                "Point `test_episode_list` at the list of this dataset, fold, shot and sampling "
                "rule, or leave it unset so that each setting gets its own list."
            )

    def _fixed_dataset(
        self, source: FewShotSource, episodes: list[Episode], *, seed: int
    ) -> EpisodeDataset:
        rank, world = self._rank_and_world()
        indices = shard_indices(len(episodes), rank, world)
        return EpisodeDataset(
            source=source,
            transform=self.transform,
            annotation=self.annotation,
            seed=seed,
            episodes=[episodes[i] for i in indices],
            episode_indices=list(indices),
            scribble=self.test_scribble,
        )

    def _loader(self, dataset: EpisodeDataset, sampler: Any = None) -> DataLoader:
        # Training goes through a loader that Lightning can resume inside an epoch.
        loader = DataLoader if sampler is None else ResumableLoader
        return loader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_episodes,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            worker_init_fn=_init_worker if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        assert self.train_dataset is not None
        rank, world = self._rank_and_world()
        sampler = EpisodeIndexSampler(
            num_episodes=len(self.train_dataset),
            rank=rank,
            world_size=world,
            same_on_every_rank=self.rank_episodes == "same",
        )
        return self._loader(self.train_dataset, sampler)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            self.setup("validate")
        # An empty list tells Lightning there is nothing to validate on.
        return [] if self.val_dataset is None else self._loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        if self.test_dataset is None:
            self.setup("test")
        assert self.test_dataset is not None
        return self._loader(self.test_dataset)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


def video_training_message(dataset: str) -> str:
    """Why a video benchmark builds no episode DataModule, and what to do instead."""
    return (
        f"data={dataset} is a video benchmark: vrpsam-eval scores a model on it (J&F), but there "
        "are no few-shot training episodes; train on an image dataset "
        "(experiment=coco20i_resnet50) and evaluate the checkpoint with "
        f"vrpsam-eval ckpt_path=... data={dataset}"
    )


def _no_source_message(stage: str, split: str, factory: Any) -> str:
    """What a run without readable data says: the dataset folder it tried and the fix."""
    root = getattr(factory, "root", None)
    if root is None:
        return f"{stage} needs a '{split}' source."
    return (
        f"{stage} needs a '{split}' source: no {factory.dataset} {split} split could be read at "
        f"data.root={root}. Point data.root at the dataset folder, e.g. "
        f"data.root=/path/to/{Path(root).name or 'VOC2012'} (data/README.md shows each layout)."
    )


def build_datamodule(
    *,
    dataset: str,
    root: str | os.PathLike[str],
    fold: int,
    source_options: Mapping[str, Any] | None = None,
    train_exclude_novel: bool = True,
    **kwargs: Any,
) -> FewShotDataModule:
    """A :class:`FewShotDataModule` for one fold of a dataset by name (what Hydra configs build).

    Args:
        dataset: ``pascal``, ``coco``, ``coco2pascal``, ``fss1000`` or ``lvis92i``.
        root: the dataset folder (``data.root``).
        fold: a fold of the dataset (0..3; LVIS-92i 0..9; FSS-1000 0).
        source_options: keyword arguments of the dataset's reader (see
            :func:`vrpsam.data.sources.build_source`).
        train_exclude_novel: leave out training images that hold a novel class (BAM's lists;
            the shipped official PASCAL-5i lists are built that way already).
        **kwargs: :class:`FewShotDataModule` arguments (shot, annotation, batch size, ...).
    """
    from vrpsam.data.folds import check_fold
    from vrpsam.data.sources import SHOT_DEPENDENT, SourceFactory

    if kwargs.pop("video", False):
        raise ValueError(video_training_message(dataset))
    check_fold(fold, dataset)
    options = dict(source_options or {})
    if dataset in SHOT_DEPENDENT:
        options["shot"] = int(kwargs.get("shot", 1))
    if "exclude_novel" in options:
        raise ValueError(
            "data.source_options.exclude_novel is a protocol switch: set "
            "protocol.train_exclude_novel=true|false instead"
        )
    options["exclude_novel"] = bool(train_exclude_novel)
    if kwargs.get("val_split") == "test":
        # Selecting on the test episodes (the official code) trains on every training image.
        options["val_fraction"] = 0.0
    factory = SourceFactory(dataset, str(root), int(fold), options)
    return FewShotDataModule(source_factory=factory, **kwargs)
