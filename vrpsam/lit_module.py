"""Lightning training and evaluation of VRP-SAM.

Only the VRP encoder learns: the optimizer sees its parameters only, the frozen parts stay in eval
mode, and checkpoints hold the learnable weights plus optimizer/scheduler state (and the RNG state,
so that a resumed run continues exactly as an uninterrupted one) — never the frozen SAM or backbone
tensors, which come from their own files.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from vrpsam.feature_store import FrozenFeatureStore
from vrpsam.losses import bce_dice_loss
from vrpsam.metrics import FewShotIoU, OtherClassShare, intersection_union
from vrpsam.modeling.precision import emulation_warning
from vrpsam.modeling.vrp_sam import VRPSAM

FROZEN_PREFIXES = ("model.backbone.", "model.sam.")
CHECKPOINT_FORMAT = 1


class FewShotModule(L.LightningModule):
    """Scores a few-shot method on episodes: val/test mIoU and FB-IoU over the fold's classes,
    plus a few test episodes kept for the overlay figure. Subclasses define ``forward(batch)``
    → mask logits (B, 1, S, S).

    Args:
        score_original_size: score predictions at each target's original size.
        num_overlays: test episodes kept (on rank 0) for the overlay figure.
    """

    def __init__(self, *, score_original_size: bool = True, num_overlays: int = 6) -> None:
        super().__init__()
        self.score_original_size = score_original_size
        self.num_overlays = num_overlays
        self.overlays: list[dict[str, torch.Tensor]] = []
        self.metrics: dict[str, FewShotIoU] = {}
        self.other_share: dict[str, OtherClassShare] = {}
        self.results: dict[str, dict] = {}  # last computed metrics per stage (percent)
        self._warned_precision = False

    def setup(self, stage: str) -> None:
        # Here rather than in each entry point: training, evaluation and the baselines all pass.
        slow = emulation_warning(self.trainer.precision, self.trainer.strategy.root_device.type)
        if slow and not self._warned_precision:
            warnings.warn(slow, stacklevel=2)
            self._warned_precision = True

    # --- evaluation --------------------------------------------------------------------------

    def _metric(self, stage: str) -> FewShotIoU:
        if stage not in self.metrics:
            datamodule = self.trainer.datamodule
            split = getattr(datamodule, "val_split", "val") if stage == "val" else "test"
            source = datamodule.source(split)
            self.metrics[stage] = FewShotIoU(class_ids=source.classes).to(self.device)
        return self.metrics[stage]

    def predictions(self, batch: dict[str, Any], logits: torch.Tensor):
        """Binary predictions and targets to score: at original size or at the network's size."""
        if not self.score_original_size:
            return list(logits[:, 0] > 0), list(batch["target_mask"])
        predictions = []
        for logit, target in zip(logits, batch["target_mask_original"], strict=True):
            full = F.interpolate(
                logit[None].float(), size=target.shape, mode="bilinear", align_corners=False
            )
            predictions.append(full[0, 0] > 0)
        return predictions, list(batch["target_mask_original"])

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        logits = self(batch)
        predictions, targets = self.predictions(batch, logits)
        self._metric(stage).update(predictions, targets, batch["class_id"].tolist())
        if "target_others_original" in batch:
            others = batch["target_others_original"]
            if not self.score_original_size:  # scored at the network size: resize alike
                size = tuple(predictions[0].shape)
                others = [F.interpolate(o[None, None].float(), size=size, mode="nearest")[0, 0]
                          for o in others]  # fmt: skip
            if stage not in self.other_share:
                self.other_share[stage] = OtherClassShare().to(self.device)
            self.other_share[stage].update(predictions, others)
        if stage == "test" and self.global_rank == 0 and len(self.overlays) < self.num_overlays:
            source = self.trainer.datamodule.source("test") if self._trainer else None
            for i in range(min(len(predictions), self.num_overlays - len(self.overlays))):
                class_id = int(batch["class_id"][i])
                iu = intersection_union(predictions[i].cpu(), targets[i].cpu())
                self.overlays.append(
                    {
                        "reference_image": batch["reference_images"][i, 0].cpu(),
                        "reference_mask": batch["reference_masks"][i, 0].cpu(),
                        "target_image": batch["target_image"][i].cpu(),
                        "target_mask": batch["target_mask"][i].cpu(),
                        "prediction": (logits[i, 0] > 0).cpu(),
                        "class_id": class_id,
                        "class_name": source.class_name(class_id) if source else str(class_id),
                        # The episode's foreground IoU as scored (percent).
                        "iou": float(100 * iu[1, 0] / max(float(iu[1, 1]), 1.0)),
                    }
                )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_metric(self, stage: str) -> None:
        if stage not in self.metrics:
            return
        raw = self.metrics[stage].compute()  # sums were reduced across processes first
        # Percent, as the literature reports them.
        result = {
            "miou": 100 * float(raw["miou"]),
            "fbiou": 100 * float(raw["fbiou"]),
            # NaN (a class without episodes) becomes None, so reports stay valid JSON.
            "per_class_iou": [None if v != v else v for v in (100 * raw["per_class_iou"]).tolist()],
            "class_ids": self.metrics[stage].class_ids,
            "episodes": int(raw["episodes"]),
        }
        if stage in self.other_share:
            result["other_class_share"] = 100 * float(self.other_share[stage].compute())
            self.other_share[stage].reset()
        self.log(f"{stage}/miou", result["miou"], prog_bar=True)
        self.log(f"{stage}/fbiou", result["fbiou"])
        self.results[stage] = result
        self.metrics[stage].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metric("val")

    def on_test_epoch_start(self) -> None:
        self.overlays = []

    def on_test_epoch_end(self) -> None:
        self._log_metric("test")


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
        protocol: the run's protocol (:meth:`vrpsam.protocol.Protocol.as_dict`), stored in
            checkpoints; a resume under other switches is refused.
        num_overlays: test episodes kept (on rank 0) for the overlay figure.
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
                model,
                backbone=cache_features == "all",
                sam=cache_features != "none",
                disk=feature_caches,
            )
        compile_model(model, compile)
        self.run_info = dict(run_info or {})
        self.protocol = dict(protocol) if protocol else None

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
        total = max(int(self.trainer.estimated_stepping_batches), 1)
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


def check_same_architecture(saved: dict, current: dict, what: str) -> None:
    """Refuse weights saved from another architecture, naming the differences."""
    keys = (
        "backbone",
        "sam",
        "num_queries",
        "num_heads",
        "num_layers",
        "backbone_kwargs",
        "sam_kwargs",
    )
    diffs = [
        f"{k}: {saved.get(k)!r} (saved) vs {current.get(k)!r} (config)"
        for k in keys
        if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise ValueError(
            f"the {what} was trained with another model than the config builds: "
            + "; ".join(diffs)
            + f". Select the matching model (e.g. model/backbone={saved.get('backbone')} "
            f"model/sam={saved.get('sam')}, or the experiment it was trained with)."
        )


COMPILE_MODES = ("none", "encoder", "all")


def compile_model(model: VRPSAM, mode: str) -> None:
    """Compile the parts ``mode`` names, in place: parameter names (and so checkpoints and
    exports) stay as they are, since methods are wrapped rather than modules replaced."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {COMPILE_MODES}, got {mode!r}")
    if mode == "none":
        return
    encoder = model.encoder
    encoder.encode_reference = torch.compile(encoder.encode_reference)
    encoder.encode_target = torch.compile(encoder.encode_target)
    # decode_batch drives the decoder's parts; its two-way transformer is the heavy one.
    model.sam.sam.mask_decoder.transformer.compile()
    if mode == "all":
        model.backbone.mid = torch.compile(model.backbone.mid)
        model.backbone.high = torch.compile(model.backbone.high)
        model.sam.sam.image_encoder.compile()
