"""Lightning training and evaluation of VRP-SAM.

Only the VRP encoder learns: the optimizer sees its parameters only, the frozen parts stay in eval
mode, and checkpoints hold the learnable weights plus optimizer/scheduler state (and the RNG state,
so that a resumed run continues exactly as an uninterrupted one), the protocol and what the run
trained on — never the frozen SAM or backbone tensors, which come from their own files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vrpsam.artifacts.architecture import check_same_architecture
from vrpsam.engine.compile import compile_model
from vrpsam.engine.feature_store import FrozenFeatureStore
from vrpsam.engine.losses import bce_dice_loss
from vrpsam.engine.scoring import FewShotModule
from vrpsam.modeling.vrp_sam import VRPSAM

FROZEN_PREFIXES = ("model.backbone.", "model.sam.")
CHECKPOINT_FORMAT = 1


class VRPSAMModule(FewShotModule):
    """Episodic training of the VRP encoder; val/test mIoU and FB-IoU over the fold's classes.

    Args:
        model: a VRP-SAM model from :func:`vrpsam.build_vrp_sam`.
        optimizer: partial optimizer (called with the trainable parameters); None to evaluate.
        scheduler: partial LR scheduler (called with the optimizer and ``T_max`` = total steps),
            stepped every iteration; None for a constant LR.
        loss_ignore_index: label ignored by the loss (None: the official code's behaviour).
        score_original_size: score predictions at each target's original size.
        cache_features: keep frozen features in memory by image id ("all", "sam" or "none").
        feature_caches: disk caches by kind (``vrpsam-cache``); what they hold is read from
            them instead of being computed or kept in memory.
        compile: ``torch.compile`` opt-in: ``"none"``, ``"encoder"`` (the learnable VRP encoder
            and SAM's mask decoder, which every step runs) or ``"all"`` (also the frozen
            backbone and SAM image encoder). The first steps then pay the compilation.
        run_info: what the run trains on (dataset, fold, shot, image size, the record of its
            frozen weight files, ...); stored in checkpoints so that exports and evaluations know
            it.
        protocol: the run's protocol (:meth:`vrpsam.engine.protocol.Protocol.as_dict`), stored in
            checkpoints; a resume under other switches is refused.
        num_overlays: test episodes kept (on rank 0) for the overlay figure.
        max_steps: the run's step limit (``trainer.max_steps``; -1: none), which the LR schedule
            ends at when it comes before the last epoch's end. ``vrpsam-train`` enforces it
            itself (Lightning is not given it: see :func:`vrpsam.engine.training.build_trainer`).
    """

    def __init__(
        self,
        *,
        model: VRPSAM,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        loss_ignore_index: int | None = 255,
        score_original_size: bool = True,
        cache_features: str = "none",
        feature_caches: dict | None = None,
        compile: str = "none",
        run_info: dict | None = None,
        protocol: dict | None = None,
        num_overlays: int = 6,
        max_steps: int = -1,
    ) -> None:
        super().__init__(score_original_size=score_original_size, num_overlays=num_overlays)
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler", "feature_caches"])
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_ignore_index = loss_ignore_index
        if cache_features not in ("all", "sam", "none"):
            raise ValueError(f"cache_features must be all, sam or none; got {cache_features!r}")
        self.store = None
        if cache_features != "none" or feature_caches:
            self.store = FrozenFeatureStore(
                model=model,
                backbone=cache_features == "all",
                sam=cache_features != "none",
                disk=feature_caches,
            )
        compile_model(model, compile)
        self.run_info = dict(run_info or {})
        self.protocol = dict(protocol) if protocol else None
        self.max_steps = int(max_steps)

    # --- forward ---------------------------------------------------------------------------

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Mask logits (B, 1, S, S) for a collated episode batch."""
        targets, references = batch["target_image"], batch["reference_images"]
        # Original sizes let SAM's resize-longest-side see each target's true aspect ratio.
        sizes = batch["target_size"]
        extra: dict[str, Any] = {}
        if self.store is not None:
            target_features, embeddings = self.store.target(batch["target_id"], targets, sizes)
            reference_ids = [i for ids in batch["reference_ids"] for i in ids]
            reference_features = self.store.reference(reference_ids, references.flatten(0, 1))
            extra = {
                "target_features": target_features,
                "reference_features": reference_features,
                "image_embeddings": embeddings,
            }
        return self.model(
            targets, references, batch["reference_masks"], target_sizes=sizes, **extra
        )

    # --- training ----------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = bce_dice_loss(
            self(batch), batch["target_mask"], ignore_index=self.loss_ignore_index
        )
        batch_size = batch["target_image"].shape[0]
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch_size)
        return losses["loss"]

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("this module was built for evaluation (no optimizer)")
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        total = self.trainer.estimated_stepping_batches  # inf for max_epochs=-1
        if self.max_steps >= 0:
            total = min(total, self.max_steps)
        total = max(int(total), 1)
        scheduler = self.scheduler_factory(optimizer, T_max=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # --- checkpoints -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(FROZEN_PREFIXES)]:
            del state[key]
        checkpoint["vrpsam"] = {
            "format": CHECKPOINT_FORMAT,
            "build_spec": self.model.build_spec,
            "run_info": self.run_info,
            "protocol": self.protocol,
            "rng": {"torch": torch.get_rng_state()},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("vrpsam")
        if info is None:
            raise ValueError("not a vrpsam training checkpoint (no 'vrpsam' section)")
        check_same_architecture(info["build_spec"], self.model.build_spec, "checkpoint")
        saved = info.get("protocol")
        if saved and self.protocol and saved != self.protocol:
            diffs = {k: (v, self.protocol.get(k)) for k, v in saved.items()
                     if self.protocol.get(k) != v}  # fmt: skip
            raise ValueError(
                f"the checkpoint was trained under other protocol switches (checkpoint, this "
                f"run): {diffs}; resume with the same protocol=... and protocol.* overrides"
            )
        # Frozen tensors are not stored: take them from the model built around the given files.
        for key, value in self.state_dict().items():
            if key.startswith(FROZEN_PREFIXES):
                checkpoint["state_dict"][key] = value
        if "rng" in info:
            torch.set_rng_state(info["rng"]["torch"])
