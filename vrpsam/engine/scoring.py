"""Scoring few-shot methods in Lightning's loops: the base module every evaluated method shares.

mIoU and FB-IoU over the fold's classes (summed intersections and unions), the share of the
predicted foreground on other classes' objects, and a few test episodes kept for the overlay
figure. :class:`~vrpsam.engine.training_module.VRPSAMModule` (VRP-SAM) and
:class:`~vrpsam.engine.method_module.MethodModule` (the training-free baselines) build on it.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from vrpsam.engine.metrics import FalsePositives, FewShotIoU, OtherClassShare, intersection_union
from vrpsam.modeling.precision import emulation_warning


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
        self.false_positives: FalsePositives | None = None  # negative test episodes only
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
        datamodule = self.trainer.datamodule if self._trainer else None
        if stage == "test" and getattr(datamodule, "test_negatives", False):
            if self.false_positives is None:
                self.false_positives = FalsePositives().to(self.device)
            self.false_positives.update(predictions)
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
        if stage == "test" and self.false_positives is not None:
            negatives = self.false_positives.compute()
            result["negative_fp_rate"] = 100 * float(negatives["fp_rate"])
            result["negative_area"] = 100 * float(negatives["area"])
            self.false_positives.reset()
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
