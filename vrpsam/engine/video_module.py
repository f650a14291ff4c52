"""One-shot video object segmentation in Lightning's test loop: one sequence per step.

Each object's reference (its mask in the first frame, or a point/box/scribble simulated from it)
goes through the method's reference side once; the later frames follow in batches of
``frame_batch`` through the same :class:`~vrpsam.data.transforms.ResizeNormalize` as episodes.
Logits are resized bilinearly to the frame's size and merged into one label map per frame
(:func:`~vrpsam.engine.davis_metrics.merge_objects`), which is scored object by object.

Sequences are sharded across processes with :func:`~vrpsam.data.episodes.shard_indices` (no
duplicates); the scores are per-(sequence, object) sums, so any process count gives the same
numbers. Build the Trainer with ``use_distributed_sampler=False`` (``conf/trainer/*.yaml`` do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vrpsam.data.annotations import annotation_rng, simulate_annotation
from vrpsam.data.davis import DavisSource
from vrpsam.data.episodes import shard_indices
from vrpsam.data.transforms import ResizeNormalize
from vrpsam.engine.davis_metrics import (
    BOUND_TH,
    DavisScores,
    boundary_f_measure,
    merge_objects,
    region_similarity,
)
from vrpsam.modeling.vrp_sam import VRPSAM, check_inputs

_ANNOTATION_STREAM = 7  # keeps video annotations apart from the episode streams


class VRPSAMVideo(nn.Module):
    """VRP-SAM with the two-step interface of the baselines: the reference state (backbone
    features of the reference and its mask through the VRP encoder's reference side) once per
    object, then the target side for a batch of frames with that state tiled, as
    :class:`~vrpsam.predictor.core.Predictor` does. Numbers equal the one-episode forward.

    Args:
        model: the VRP-SAM to run.
    """

    name = "vrpsam"

    def __init__(self, model: VRPSAM) -> None:
        super().__init__()
        self.model = model.eval()

    @torch.no_grad()
    def prepare(
        self,
        reference_images: torch.Tensor,
        reference_masks: torch.Tensor,
        annotation: str,
        seed: int = 0,
    ) -> tuple[Any, int]:
        """The reference state of (k, 3, S, S) images and (k, S, S) annotations, and k."""
        del annotation, seed  # VRP-SAM reads any annotation kind the same way, draws nothing
        images, masks = check_inputs(
            reference_images[:1], reference_images[None], reference_masks[None]
        )
        return self.model.reference_state(images, masks), images.shape[1]

    @torch.no_grad()
    def predict_targets(
        self, state: tuple[Any, int], target_images: torch.Tensor, target_sizes: torch.Tensor
    ) -> torch.Tensor:
        """Mask logits (N, S, S) in (N, 3, S, S) targets of original sizes (N, 2)."""
        return self.predict_objects([state], target_images, target_sizes)[0]

    @torch.no_grad()
    def predict_objects(
        self,
        states: Sequence[tuple[Any, int]],
        target_images: torch.Tensor,
        target_sizes: torch.Tensor,
    ) -> torch.Tensor:
        """Mask logits (O, N, S, S) of O prepared references in the same N targets: the
        targets' backbone features and SAM embeddings are computed once for all objects."""
        model, count = self.model, target_images.shape[0]
        features = model.target_features(target_images)
        with model.frozen_precision(target_images.device):
            embeddings = model.sam.encode(target_images, target_sizes)
        logits = []
        for reference, shots in states:
            prompts = model.prompts_from_reference(
                reference.tile(count), None, shots, features=features
            )
            masks = model.decode(
                prompts, target_images, target_sizes=target_sizes, image_embeddings=embeddings
            )
            logits.append(masks[:, 0].float())
        return torch.stack(logits)


class DavisSequences(Dataset):
    """One item per sequence: its index in the list, name, frame stems and object ids (frames
    are read inside the test step, in batches)."""

    def __init__(self, source: DavisSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source.sequences)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.source.sequences[index]
        stems = self.source.frames(name)
        return {
            "index": index,
            "sequence": name,
            "stems": list(stems),
            "objects": list(self.source.objects(name)),
            "frame_paths": [str(self.source.frame_path(name, s)) for s in stems],
        }


def _one(item: dict[str, Any]) -> dict[str, Any]:
    return item


class DavisDataModule(L.LightningDataModule):
    """The sequences of one DAVIS split, this process's shard only."""

    def __init__(self, source: DavisSource) -> None:
        super().__init__()
        self.source = source

    def test_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)
        dataset = DavisSequences(self.source)
        shard = list(shard_indices(len(dataset), rank, world))
        return DataLoader(dataset, batch_size=None, sampler=shard, collate_fn=_one)


def reference_annotation(
    transform: ResizeNormalize, mask: np.ndarray, kind: str, rng: np.random.Generator
) -> torch.Tensor:
    """(S, S) float {0, 1} annotation of ``kind`` simulated from an (H, W) object mask at the
    network size; an object too thin for nearest resizing keeps every cell it covers."""
    resized = transform.mask_array(mask.astype(np.uint8))
    if not resized.any():
        size = (transform.size, transform.size)
        resized = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        resized = resized.astype(np.uint8)
    drawn = simulate_annotation(resized, kind, rng=rng, training=False)
    return torch.from_numpy(drawn.astype(np.float32))


def object_seed(seed: int, sequence: int, object_id: int) -> int:
    """A seed for one object's random choices, fixed by the evaluation seed, the sequence's
    index and the object id (not by batch size or process count)."""
    return int(np.random.SeedSequence([seed, sequence, object_id]).generate_state(1)[0])


class VideoModule(L.LightningModule):
    """Segments and scores DAVIS sequences with a method of the two-step interface.

    Args:
        runner: a :class:`~vrpsam.baselines.base.FewShotMethod` or :class:`VRPSAMVideo`.
        sequences: the split's sequence names (the score rows).
        image_size, interpolation: the network input (as the method was trained / configured).
        annotation: the reference annotation kind.
        seed: the evaluation seed (annotations and the methods' random choices).
        frame_batch: target frames per forward pass.
        num_overlays: sequences kept (on rank 0) for the overlay figure.
        overlay_frames: target frames shown per kept sequence.
        bound_th: the boundary tolerance of F.
    """

    def __init__(
        self,
        *,
        runner: nn.Module,
        sequences: Sequence[str],
        image_size: int,
        interpolation: str = "bilinear",
        annotation: str = "mask",
        seed: int = 0,
        frame_batch: int = 8,
        num_overlays: int = 4,
        overlay_frames: int = 3,
        bound_th: float = BOUND_TH,
    ) -> None:
        super().__init__()
        if frame_batch < 1:
            raise ValueError(f"data.frame_batch must be at least 1, got {frame_batch}")
        self.runner = runner.eval()
        self.sequences = tuple(sequences)
        self.transform = ResizeNormalize(size=image_size, interpolation=interpolation)
        self.annotation = annotation
        self.seed = seed
        self.frame_batch = frame_batch
        self.num_overlays = num_overlays
        self.overlay_frames = overlay_frames
        self.bound_th = bound_th
        self.scores = DavisScores(num_sequences=len(self.sequences))
        self.overlays: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}

    def on_test_epoch_start(self) -> None:
        self.overlays = []
        self.scores.reset()

    def _source(self) -> DavisSource:
        return self.trainer.datamodule.source

    def prepare_objects(
        self, source: DavisSource, index: int, name: str, stem: str, objects: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, dict[int, Any]]:
        """The reference frame, its ids and each object's prepared reference state."""
        rgb, label = source.load_frame(name, stem), source.load_objects(name, stem)
        image = self.transform.image(rgb).to(self.device)
        states = {}
        for object_id in objects:
            rng = annotation_rng(self.seed, _ANNOTATION_STREAM, index, object_id)
            drawn = reference_annotation(self.transform, label == object_id, self.annotation, rng)
            states[object_id] = self.runner.prepare(
                image[None],
                drawn[None].to(self.device),
                self.annotation,
                object_seed(self.seed, index, object_id),
            )
        return rgb, label, states

    def predict_objects(
        self, states: Sequence[Any], images: torch.Tensor, sizes: torch.Tensor
    ) -> torch.Tensor:
        """(O, N, S, S) logits of every object's state in (N, 3, S, S) frames of sizes (N, 2):
        in one call where the runner shares the frames' encodings across objects."""
        return self.runner.predict_objects(states, images, sizes.to(self.device))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        source = self._source()
        index, name = int(batch["index"]), batch["sequence"]
        stems, objects = list(batch["stems"]), [int(o) for o in batch["objects"]]
        rgb, label, states = self.prepare_objects(source, index, name, stems[0], objects)
        # The DAVIS protocol scores frames [1:-1]: the reference and the last frame are left out.
        scored = set(range(1, len(stems) - 1))
        self.scores.mark(index, objects, len(scored))
        keep = self.global_rank == 0 and len(self.overlays) < self.num_overlays
        shown = _spread(len(stems) - 1, self.overlay_frames) if keep else set()
        strip = {"sequence": name, "reference": rgb, "reference_label": label,
                 "reference_stem": stems[0], "frames": []}  # fmt: skip
        targets = list(range(1, len(stems)))
        for start in range(0, len(targets), self.frame_batch):
            chunk = targets[start : start + self.frame_batch]
            rgbs = [source.load_frame(name, stems[t]) for t in chunk]
            images = torch.stack([self.transform.image(x) for x in rgbs]).to(self.device)
            sizes = torch.tensor([x.shape[:2] for x in rgbs], dtype=torch.int64)
            logits = self.predict_objects([states[o] for o in objects], images, sizes)
            for i, t in enumerate(chunk):
                full = F.interpolate(
                    logits[:, i][None].float(), size=rgbs[i].shape[:2], mode="bilinear",
                    align_corners=False,
                )[0]  # fmt: skip
                predicted = merge_objects(full, objects).cpu().numpy()
                if t in scored:
                    truth = source.load_objects(name, stems[t])
                    for object_id in objects:
                        pred, gt = predicted == object_id, truth == object_id
                        self.scores.update(
                            index,
                            object_id,
                            region_similarity(pred, gt),
                            boundary_f_measure(pred, gt, self.bound_th),
                        )
                if t - 1 in shown:
                    strip["frames"].append({"stem": stems[t], "image": rgbs[i],
                                            "label": predicted})  # fmt: skip
        if keep:
            self.overlays.append(strip)

    def on_test_epoch_end(self) -> None:
        raw = self.scores.compute()  # sums were reduced across processes first
        self.results = summarise(raw, self.sequences)
        self.log("test/jf", self.results["jf_mean"], sync_dist=True)  # equal on every rank


def _spread(count: int, k: int) -> set[int]:
    """``k`` evenly spread indices of ``range(count)`` (first and last included)."""
    if count <= 0 or k <= 0:
        return set()
    return {round(float(v)) for v in np.linspace(0, count - 1, min(k, count))}


def _percent(value: float) -> float | None:
    return None if value != value else 100 * float(value)  # NaN → None keeps JSON valid


def summarise(raw: dict[str, torch.Tensor], sequences: Sequence[str]) -> dict[str, Any]:
    """Percent J, F, J&F overall and per sequence from :meth:`DavisScores.compute`."""
    # torchmetrics squeezes one-element results: one sequence (of one object) comes back 0-dim.
    count = len(sequences)
    j, f = raw["j"].cpu().reshape(count, -1), raw["f"].cpu().reshape(count, -1)
    objects, frames = raw["objects"].cpu().reshape(count, -1), raw["frames"].cpu().reshape(count)
    per_sequence = []
    for index, name in enumerate(sequences):
        ids = torch.nonzero(objects[index] > 0).flatten().tolist()
        if not ids:
            continue
        j_seq, f_seq = j[index, ids], f[index, ids]
        scored = ~torch.isnan(j_seq)
        j_mean = float(j_seq[scored].mean()) if scored.any() else float("nan")
        f_mean = float(f_seq[scored].mean()) if scored.any() else float("nan")
        per_sequence.append(
            {
                "sequence": name,
                "objects": len(ids),
                "j_mean": _percent(j_mean),
                "f_mean": _percent(f_mean),
                "jf_mean": _percent((j_mean + f_mean) / 2),
                "frames": int(frames[index]),
            }
        )
    return {
        "j_mean": 100 * float(raw["j_mean"]),
        "f_mean": 100 * float(raw["f_mean"]),
        "jf_mean": 100 * float(raw["jf_mean"]),
        "objects": sum(s["objects"] for s in per_sequence),
        "sequences": len(per_sequence),
        "frames_scored": sum(s["frames"] for s in per_sequence),
        "per_sequence": per_sequence,
    }
