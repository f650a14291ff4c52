"""Run reports that do not depend on the chosen logger: ``metrics.json`` and a training curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L

from vrpsam.fileio import atomic_write, atomic_write_json
from vrpsam.reports import plot_overlays, plot_training_curve


class RunReport(L.Callback):
    """Collects the training loss and validation metrics, and writes on rank 0:

    * ``metrics.json``: best and last validation mIoU/FB-IoU, the history, test metrics when a
      test ran, the best checkpoint path;
    * ``training_curve.png``: training loss and validation mIoU against the step.

    The history is part of the callback's checkpoint state, so a resumed run keeps it.
    """

    def __init__(self, *, out_dir: str | Path, loss_every: int = 10) -> None:
        self.out_dir = Path(out_dir)
        self.loss_every = loss_every
        self.losses: list[tuple[int, float]] = []
        self.validation: list[dict[str, float]] = []
        self.test: dict[str, Any] = {}
        self.test_before: dict[str, Any] = {}
        self.phase = "after"  # set to "before" by a test of the untrained model

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self.losses, "validation": self.validation}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Restore only into a fresh callback (a resumed run); trainer.test(ckpt_path="best") also
        # restores callback states, and must not roll the history back to the best epoch.
        if self.losses or self.validation:
            return
        self.losses = [tuple(x) for x in state_dict.get("losses", [])]
        self.validation = list(state_dict.get("validation", []))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if outputs is not None and (step % self.loss_every == 0 or step == 1):
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.losses.append((step, float(loss.detach())))

    def on_validation_end(self, trainer, pl_module) -> None:
        # Not on_validation_epoch_end: callbacks run before the module's hook that logs val/miou.
        if trainer.sanity_checking or "val/miou" not in trainer.callback_metrics:
            return
        metrics = trainer.callback_metrics
        self.validation.append(
            {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                "miou": float(metrics["val/miou"]),
                "fbiou": float(metrics.get("val/fbiou", float("nan"))),
            }
        )

    def on_fit_end(self, trainer, pl_module) -> None:
        self.write(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        results = dict(pl_module.results.get("test", {}))
        if self.phase == "before":
            self.test_before = results
        else:
            self.test = results
            if trainer.global_rank == 0 and pl_module.overlays:
                atomic_write(
                    self.out_dir / "overlays.png",
                    lambda tmp: plot_overlays(pl_module.overlays, tmp),
                )
        self.write(trainer)

    def summary(self, trainer) -> dict[str, Any]:
        best = max(self.validation, key=lambda r: r["miou"], default=None)
        checkpoint = getattr(trainer, "checkpoint_callback", None)
        return {
            "steps": trainer.global_step,
            "epochs": trainer.current_epoch,
            "val_best": best,
            "val_last": self.validation[-1] if self.validation else None,
            "val_history": self.validation,
            "test_before_training": self.test_before or None,
            "test": self.test or None,  # percent; per_class_iou in class_ids order
            "best_checkpoint": getattr(checkpoint, "best_model_path", None) or None,
            "last_checkpoint": _existing(
                Path(getattr(checkpoint, "dirpath", "") or "."), "last.ckpt"
            ),
        }

    def write(self, trainer) -> None:
        if trainer.global_rank != 0:
            return
        path = self.out_dir / "metrics.json"
        summary = self.summary(trainer)
        if path.is_file() and not summary["test_before_training"]:
            # Spawned processes (ddp_spawn) start each trainer call from a fresh copy of this
            # callback: keep what an earlier call wrote.
            summary["test_before_training"] = json.loads(path.read_text()).get(
                "test_before_training"
            )
        atomic_write_json(path, summary, indent=2)
        if self.losses:
            atomic_write(
                self.out_dir / "training_curve.png",
                lambda tmp: plot_training_curve(self.losses, self.validation, tmp),
            )


def _existing(folder: Path, name: str) -> str | None:
    path = folder / name
    return str(path) if path.is_file() else None


class StopAfterEpochs(L.Callback):
    """End training after ``epochs`` epochs of this process, keeping the full schedule: for job
    time limits (train in slices, each resuming with ``ckpt_path=last``) and for resume tests."""

    def __init__(self, *, epochs: int) -> None:
        self.epochs = epochs
        self.seen = 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seen += 1
        if self.seen >= self.epochs:
            trainer.should_stop = True
