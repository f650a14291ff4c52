"""Evaluation of any :class:`FewShotMethod` through the same Lightning test loop as VRP-SAM.

The episodes come from the same datamodule and fixed episode list, the predictions go through the
same :class:`~vrpsam.engine.scoring.FewShotModule` scoring, so a baseline's ``eval.json`` is
directly comparable with VRP-SAM's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vrpsam.baselines.base import EpisodeInput, FewShotMethod
from vrpsam.engine.scoring import FewShotModule


def episode_seed(eval_seed: int, episode_index: int) -> int:
    """A seed for one episode's random choices, fixed by the evaluation seed and the episode's
    index only (not by batch size, worker or process count)."""
    return int(np.random.SeedSequence([eval_seed, episode_index]).generate_state(1)[0])


class MethodModule(FewShotModule):
    """Runs a training-free method episode by episode inside Lightning's test loop.

    Args:
        method: the method to evaluate.
        annotation: the kind of reference annotation the episodes carry.
        seed: the evaluation seed (with the episode index, it seeds each episode's choices).
        score_original_size, num_overlays: see :class:`FewShotModule`.
    """

    def __init__(
        self,
        *,
        method: FewShotMethod,
        annotation: str,
        seed: int = 0,
        score_original_size: bool = True,
        num_overlays: int = 6,
    ) -> None:
        super().__init__(score_original_size=score_original_size, num_overlays=num_overlays)
        self.method = method.eval()
        self.annotation = annotation
        self.seed = seed

    def episodes(self, batch: dict[str, Any]) -> list[EpisodeInput]:
        """The batch's episodes as the methods' input type."""
        return [
            EpisodeInput(
                target_image=batch["target_image"][i],
                target_size=tuple(int(v) for v in batch["target_size"][i]),
                reference_images=batch["reference_images"][i],
                reference_masks=batch["reference_masks"][i],
                annotation=self.annotation,
                seed=episode_seed(self.seed, int(batch["episode_index"][i])),
            )
            for i in range(batch["target_image"].shape[0])
        ]

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Mask logits (B, 1, S, S), one episode at a time (the methods are per-episode)."""
        # PerSAM-F fits two weights per episode: it needs autograd inside the test loop (the
        # evaluation's trainer runs with inference_mode=False for the baselines).
        with torch.enable_grad():
            logits = [self.method.predict(episode) for episode in self.episodes(batch)]
        return torch.stack(logits)[:, None].float()
