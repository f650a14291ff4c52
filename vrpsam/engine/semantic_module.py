"""Many classes at once in Lightning's test loop: one target image per step.

A *bank* (K annotated references per class) goes once through the method's reference side; the
all-classes form shares one bank across every target, the N-way form has one per episode. Every
method gives (C, N, S, S) mask logits and (C, N) presence scores for the bank's C classes:

* the two-step methods (:class:`~vrpsam.baselines.base.FewShotMethod`,
  :class:`~vrpsam.engine.video_module.VRPSAMVideo`) logit maps per class, scored by
  :func:`~vrpsam.baselines.multiclass.presence_scores`;
* RIM its own multi-class segmentation (:meth:`~vrpsam.baselines.rim.RIM.segment`), its label
  map as ±1 logits and each class's best region score as the presence score.

A class is claimed in an image when its score reaches the threshold; logits are resized to the
image's size and merged (:func:`~vrpsam.baselines.multiclass.merge_labels`). Images are sharded
across processes with :func:`~vrpsam.data.episodes.shard_indices` and every score is a summed or
gathered state, so any process count gives the same numbers. Build the Trainer with
``use_distributed_sampler=False`` (``conf/trainer/*.yaml`` do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vrpsam.baselines.multiclass import merge_labels, presence_scores
from vrpsam.baselines.rim import RIM
from vrpsam.data.annotations import annotation_rng
from vrpsam.data.base import FewShotSource
from vrpsam.data.episodes import shard_indices
from vrpsam.data.semantic import SemanticEpisode, label_map
from vrpsam.data.transforms import ResizeNormalize
from vrpsam.engine.semantic_metrics import ConfusionMatrix, PresenceCounts, PresencePairs
from vrpsam.engine.video_module import object_seed, reference_annotation

_ANNOTATION_STREAM = 8  # keeps bank annotations apart from the episode and video streams


class SemanticImages(Dataset):
    """One item per episode: the target's RGB image and its label map restricted to the
    episode's classes, with the episode's classes and references (loaded in the step).

    Args:
        episodes: the episodes, in order.
        source: the split the targets belong to.
        shared_bank: every episode has the same bank (the all-classes form).
    """

    def __init__(
        self, episodes: Sequence[SemanticEpisode], source: FewShotSource, shared_bank: bool
    ) -> None:
        self.episodes = list(episodes)
        self.source = source
        self.shared_bank = shared_bank

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode = self.episodes[index]
        return {
            "index": index,
            "bank": 0 if self.shared_bank else index,
            "target_id": episode.target_id,
            "class_ids": episode.class_ids,
            "reference_ids": episode.reference_ids,
            "image": self.source.load_image(episode.target_id),
            "label": label_map(self.source, episode.target_id, keep=episode.class_ids),
        }


def _one(item: dict[str, Any]) -> dict[str, Any]:
    return item


class SemanticDataModule(L.LightningDataModule):
    """The episodes of one pass (validation or test images), this process's shard only.

    Args:
        episodes: the pass's episodes.
        source: the targets' split.
        references: the split the banks' references come from.
        shared_bank: every episode has the same bank.
        num_workers: loader processes.
    """

    def __init__(
        self,
        *,
        episodes: Sequence[SemanticEpisode],
        source: FewShotSource,
        references: FewShotSource,
        shared_bank: bool,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.dataset = SemanticImages(episodes, source, shared_bank)
        self.references = references
        self.num_workers = num_workers

    def test_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)
        shard = list(shard_indices(len(self.dataset), rank, world))
        return DataLoader(self.dataset, batch_size=None, sampler=shard, collate_fn=_one,
                          num_workers=self.num_workers)  # fmt: skip


class MaskRunner(nn.Module):
    """A two-step method over a bank: one prepared state per class, logits per class.

    Args:
        method: a :class:`~vrpsam.baselines.base.FewShotMethod` or a
            :class:`~vrpsam.engine.video_module.VRPSAMVideo`.
    """

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method.eval()

    def prepare(
        self, images: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], annotation: str,
        seeds: Sequence[int],
    ) -> list[Any]:  # fmt: skip
        """States of C classes from (k, 3, S, S) images and (k, S, S) annotations each."""
        # PerSAM-F fits per reference: autograd stays on (the trainer runs without inference
        # mode for the baselines).
        with torch.enable_grad():
            return [self.method.prepare(i, m, annotation, s)
                    for i, m, s in zip(images, masks, seeds, strict=True)]  # fmt: skip

    def predict(
        self, states: list[Any], images: torch.Tensor, sizes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, N, S, S) logits and (C, N) presence scores in (N, 3, S, S) targets."""
        with torch.enable_grad():  # every method shares each target's encodings across classes
            logits = self.method.predict_objects(states, images, sizes).detach().float()
        return logits, presence_scores(logits)


class RIMRunner(nn.Module):
    """RIM over a bank: the references' features once, then one multi-class segmentation per
    target (its label map as ±1 logits, its best region score per class as presence)."""

    def __init__(self, rim: RIM) -> None:
        super().__init__()
        self.rim = rim.eval()

    def prepare(
        self, images: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], annotation: str,
        seeds: Sequence[int],
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The bank's (K, C') features and (K,) class indices."""
        del seeds
        self.rim.check_annotation(annotation)
        feats = [self.rim.describe_references(i, m) for i, m in zip(images, masks, strict=True)]
        labels = [torch.full((len(f),), c, dtype=torch.int64) for c, f in enumerate(feats)]
        return torch.cat(feats), torch.cat(labels).to(feats[0].device)

    def predict(
        self, state: tuple[torch.Tensor, torch.Tensor], images: torch.Tensor, sizes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats, labels = state
        count = int(labels.max()) + 1
        logits, scores = [], []
        for image, size in zip(images, sizes, strict=True):
            label, class_scores, _ = self.rim.segment(
                image, feats, labels, class_names=[str(c) for c in range(count)],
                original_size=tuple(int(v) for v in size),
            )  # fmt: skip
            ids = torch.arange(1, count + 1, device=label.device)[:, None, None]
            logits.append(torch.where(label[None] == ids, 1.0, -1.0))
            scores.append(class_scores.float())
        return torch.stack(logits, 1), torch.stack(scores, 1)


def bank_runner(method: nn.Module) -> nn.Module:
    """The runner of ``method``: RIM segments all classes itself, the rest class by class."""
    return RIMRunner(method) if isinstance(method, RIM) else MaskRunner(method)


class SemanticModule(L.LightningModule):
    """Segments every class of a bank in each target and scores the label maps.

    ``phase = "val"`` gathers (presence score, truth) pairs for the threshold; ``"test"``
    merges the claimed classes into label maps and scores them.

    Args:
        runner: from :func:`bank_runner`.
        class_ids: the classes scored (all of the dataset's, or a fold's novel classes).
        image_size, interpolation: the network input.
        annotation: the references' annotation kind.
        seed: the evaluation seed (annotations, the methods' random choices).
        threshold: the presence threshold (test phase).
        num_overlays: test images kept (on rank 0) for the overlay figure.
    """

    def __init__(
        self,
        *,
        runner: nn.Module,
        class_ids: Sequence[int],
        image_size: int,
        interpolation: str = "bilinear",
        annotation: str = "mask",
        seed: int = 0,
        threshold: float = 0.5,
        num_overlays: int = 4,
    ) -> None:
        super().__init__()
        self.runner = runner.eval()
        self.class_ids = [int(c) for c in class_ids]
        self.transform = ResizeNormalize(size=image_size, interpolation=interpolation)
        self.annotation, self.seed = annotation, seed
        self.threshold = float(threshold)
        self.num_overlays = num_overlays
        self.phase = "test"
        self.confusion = ConfusionMatrix(class_ids=self.class_ids)
        self.presence = PresenceCounts()
        self.pairs = PresencePairs()
        self.overlays: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}
        self._bank_key: Any = None
        self._bank: Any = None

    def on_test_epoch_start(self) -> None:
        self.overlays = []
        for metric in (self.confusion, self.presence, self.pairs):
            metric.reset()
        # Every process holds a tensor, also one whose shard is empty, before the gather.
        self.pairs.update(torch.zeros(0, device=self.device), torch.zeros(0, device=self.device))

    def bank(self, batch: dict[str, Any]) -> Any:
        """The prepared bank of the batch's episode (kept while consecutive episodes share it)."""
        key = (batch["bank"], batch["class_ids"], batch["reference_ids"])
        if key != self._bank_key:
            source: FewShotSource = self.trainer.datamodule.references
            images, masks, seeds = [], [], []
            for class_id, ids in zip(batch["class_ids"], batch["reference_ids"], strict=True):
                drawn_images, drawn_masks = [], []
                for j, image_id in enumerate(ids):
                    rng = annotation_rng(self.seed, _ANNOTATION_STREAM, batch["bank"], class_id, j)
                    mask = source.load_mask(image_id, class_id) == 1
                    drawn_images.append(self.transform.image(source.load_image(image_id)))
                    drawn_masks.append(
                        reference_annotation(self.transform, mask, self.annotation, rng)
                    )
                images.append(torch.stack(drawn_images).to(self.device))
                masks.append(torch.stack(drawn_masks).to(self.device))
                seeds.append(object_seed(self.seed, batch["bank"], class_id))
            self._bank = self.runner.prepare(images, masks, self.annotation, seeds)
            self._bank_key = key
        return self._bank

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        rgb, truth = batch["image"], torch.from_numpy(batch["label"]).long()
        classes = list(batch["class_ids"])
        state = self.bank(batch)
        image = self.transform.image(rgb)[None].to(self.device)
        size = torch.tensor([rgb.shape[:2]], dtype=torch.int64, device=self.device)
        logits, scores = self.runner.predict(state, image, size)
        scores = scores[:, 0]
        shown = torch.tensor([bool((truth == c).any()) for c in classes])
        if self.phase == "val":
            self.pairs.update(scores, shown.to(scores.device))
            return
        full = F.interpolate(logits[:, 0][None].float(), size=rgb.shape[:2], mode="bilinear",
                             align_corners=False)[0]  # fmt: skip
        claimed = scores >= self.threshold
        predicted = merge_labels(full, classes, claimed).cpu()
        self.confusion.update(predicted, truth)
        self.presence.update(torch.tensor([bool((predicted == c).any()) for c in classes]), shown)
        if self.global_rank == 0 and len(self.overlays) < self.num_overlays:
            shown_maps = {"truth": batch["label"], "prediction": predicted.numpy()}
            self.overlays.append({"target_id": batch["target_id"], "image": rgb, **shown_maps})

    def on_test_epoch_end(self) -> None:
        # compute() reduces the states across processes first.
        if self.phase == "val":
            scores, present = self.pairs.compute()
            self.results = {"scores": scores.tolist(), "present": present.tolist()}
            return
        raw = self.confusion.compute()
        self.results = {
            "matrix": raw["matrix"].tolist(),
            "iou": [None if v != v else 100 * v for v in raw["iou"].tolist()],
            "miou": 100 * float(raw["miou"]),
            "pixel_accuracy": 100 * float(raw["pixel_accuracy"]),
            "presence": self.presence.compute(),
        }
        self.log("test/miou", self.results["miou"], sync_dist=True)  # equal on every rank
