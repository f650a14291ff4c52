"""One small interface for every few-shot method the harness evaluates.

A method gets one episode — k annotated references and one target, as the evaluation's data
pipeline delivers them — and returns mask logits for the target (positive = the referenced class).
The harness (:class:`vrpsam.engine.scoring.MethodModule`) feeds every method the identical fixed
episode list and scores the logits with the identical metric, so numbers are comparable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vrpsam.baselines.sam_prompts import SamImage, encode_image

ANNOTATIONS = ("point", "scribble", "box", "mask")


@dataclass
class EpisodeInput:
    """One episode as the evaluation pipeline delivers it.

    Attributes:
        target_image: (3, S, S) ImageNet-normalised target at the pipeline's square size.
        target_size: (h, w) of the target's original image (for SAM's resize-longest-side).
        reference_images: (k, 3, S, S) ImageNet-normalised references.
        reference_masks: (k, S, S) binary float annotation masks (a point, scribble, box or the
            full mask, as ``eval.annotation`` says).
        annotation: the annotation kind of ``reference_masks``.
        seed: a seed for this episode's random choices (fixed by the evaluation seed and the
            episode's index, so results do not depend on batch size or process count).
    """

    target_image: torch.Tensor
    target_size: tuple[int, int]
    reference_images: torch.Tensor
    reference_masks: torch.Tensor
    annotation: str
    seed: int = 0

    @property
    def shots(self) -> int:
        return self.reference_images.shape[0]


@dataclass
class StoredReference:
    """The default :meth:`FewShotMethod.prepare` state: the references, kept as they are.

    Attributes:
        reference_images: (k, 3, S, S) ImageNet-normalised references.
        reference_masks: (k, S, S) binary float annotation masks.
        annotation: their annotation kind.
        seed: the seed every target's episode gets.
    """

    reference_images: torch.Tensor
    reference_masks: torch.Tensor
    annotation: str
    seed: int = 0


class UnsupportedEpisodeError(ValueError):
    """A method asked for something it cannot do (an annotation kind, a shot count)."""


class FewShotMethod(nn.Module):
    """Reference(s) + annotation + target → target mask logits (S, S), float.

    Subclasses set :attr:`name` and implement :meth:`predict`. They hold frozen models only;
    anything fitted per episode (PerSAM-F's two weights) is fitted inside :meth:`predict`.

    Many targets of one reference (the frames of a video) go through :meth:`prepare` once and
    :meth:`predict_targets` per batch of targets. The default keeps the references and calls
    :meth:`predict` per target; a method whose reference side is costly overrides both (PerSAM-F
    fits its weights once per reference). Many references in the same targets (the classes of a
    bank, the objects of a video) go through :meth:`predict_objects`, which embeds each target
    with SAM once for all of them: subclasses embed targets with :meth:`encode_target`.
    """

    name: str = "method"
    annotations: tuple[str, ...] = ANNOTATIONS
    _target_memo: dict[tuple, tuple[torch.Tensor, SamImage]] | None = None

    @contextmanager
    def shared_targets(self) -> Iterator[None]:
        """Within this block each target's SAM embedding is computed once, however many
        references ask for it (the targets must stay alive and unchanged inside the block)."""
        self._target_memo = {}
        try:
            yield
        finally:
            self._target_memo = None

    def encode_target(
        self, image: torch.Tensor, original_size: tuple[int, int] | None = None
    ) -> SamImage:
        """The SAM embedding of a (3, S, S) target (reused inside :meth:`shared_targets`)."""
        memo = self._target_memo
        if memo is None:
            return encode_image(self.sam, image, original_size)
        size = None if original_size is None else tuple(int(v) for v in original_size)
        key = (image.data_ptr(), image.storage_offset(), tuple(image.shape), image.device, size)
        if key not in memo:
            # The image is kept with its embedding so its memory cannot be reused by another
            # tensor with the same address while the block lasts.
            memo[key] = (image, encode_image(self.sam, image, original_size))
        return memo[key][1]

    def check(self, episode: EpisodeInput) -> None:
        """Refuse annotation kinds this method cannot use, with the reason and what to do."""
        self.check_annotation(episode.annotation)

    def check_annotation(self, annotation: str) -> None:
        """Refuse an annotation kind this method cannot use, with the reason and what to do."""
        if annotation not in self.annotations:
            raise UnsupportedEpisodeError(
                f"method {self.name!r} does not support eval.annotation={annotation}; "
                f"it supports {', '.join(self.annotations)}"
            )

    def predict(self, episode: EpisodeInput) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def prepare(
        self,
        reference_images: torch.Tensor,
        reference_masks: torch.Tensor,
        annotation: str,
        seed: int = 0,
    ) -> Any:
        """The reference side, computed once for any number of targets.

        Args:
            reference_images: (k, 3, S, S) ImageNet-normalised references.
            reference_masks: (k, S, S) binary float annotation masks of kind ``annotation``.
            annotation: the annotation kind.
            seed: a seed for the reference's random choices.

        Returns:
            a state for :meth:`predict_targets` (here a :class:`StoredReference`).
        """
        return StoredReference(reference_images, reference_masks, annotation, int(seed))

    def predict_targets(
        self,
        state: Any,
        target_images: torch.Tensor,
        target_sizes: torch.Tensor | Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Mask logits (N, S, S) of the prepared reference in each of the targets.

        Args:
            state: from :meth:`prepare`.
            target_images: (N, 3, S, S) ImageNet-normalised targets.
            target_sizes: (N, 2) original (h, w) of the targets.
        """
        logits = [
            self.predict(
                EpisodeInput(
                    target_image=image,
                    target_size=tuple(int(v) for v in size),
                    reference_images=state.reference_images,
                    reference_masks=state.reference_masks,
                    annotation=state.annotation,
                    seed=state.seed,
                )
            )
            for image, size in zip(target_images, target_sizes, strict=True)
        ]
        return torch.stack(logits).float()

    def predict_objects(
        self,
        states: Sequence[Any],
        target_images: torch.Tensor,
        target_sizes: torch.Tensor | Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Mask logits (O, N, S, S) of O prepared references in the same N targets, each target
        embedded by SAM once for all O references."""
        with self.shared_targets():
            return torch.stack([self.predict_targets(s, target_images, target_sizes)
                                for s in states])  # fmt: skip

    def train(self, mode: bool = True) -> FewShotMethod:
        return super().train(False)  # every part is frozen
