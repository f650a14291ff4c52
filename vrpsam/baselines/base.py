"""One small interface for every few-shot method the harness evaluates.

A method gets one episode — k annotated references and one target, as the evaluation's data
pipeline delivers them — and returns mask logits for the target (positive = the referenced class).
The harness (:class:`vrpsam.engine.scoring.MethodModule`) feeds every method the identical fixed
episode list and scores the logits with the identical metric, so numbers are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

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


class UnsupportedEpisodeError(ValueError):
    """A method asked for something it cannot do (an annotation kind, a shot count)."""


class FewShotMethod(nn.Module):
    """Reference(s) + annotation + target → target mask logits (S, S), float.

    Subclasses set :attr:`name` and implement :meth:`predict`. They hold frozen models only;
    anything fitted per episode (PerSAM-F's two weights) is fitted inside :meth:`predict`.
    """

    name: str = "method"
    annotations: tuple[str, ...] = ANNOTATIONS

    def check(self, episode: EpisodeInput) -> None:
        """Refuse annotation kinds this method cannot use, with the reason and what to do."""
        if episode.annotation not in self.annotations:
            raise UnsupportedEpisodeError(
                f"method {self.name!r} does not support eval.annotation={episode.annotation}; "
                f"it supports {', '.join(self.annotations)}"
            )

    def predict(self, episode: EpisodeInput) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def train(self, mode: bool = True) -> FewShotMethod:
        return super().train(False)  # every part is frozen
