"""Run reports that do not depend on the chosen logger: ``metrics.json`` and a training curve."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L

from vrpsam.artifacts.atomic import atomic_write, atomic_write_json
from vrpsam.reports.figures import plot_overlays, plot_training_curve

logger = logging.getLogger(__name__)


class RunReport(L.Callback):
    """Collects the training loss and validation metrics, and writes (on rank 0) two reports.

    * ``metrics.json``: steps, epochs (completed, and as a fraction of the epoch length), best and
      last validation mIoU/FB-IoU, the history, test metrics when a test ran (before and after
      training, labelled), the best checkpoint path;
    * ``training_curve.png``: training loss and validation mIoU against the step.

    The history is part of the callback's checkpoint state, so a resumed run keeps it.
    """

    def __init__(self, *, out_dir: str | Path, loss_every: int = 1) -> None:
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
        if outputs is not None and step % self.loss_every == 0:
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

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and trainer.global_rank == 0:
            self.write(trainer)
            logger.warning(interrupted_hint(self.out_dir, trainer.global_step))

    def on_test_end(self, trainer, pl_module) -> None:
        results = dict(pl_module.results.get("test", {}))
        if trainer.global_rank == 0 and results:
            label = "before training" if self.phase == "before" else "after training"
            logger.info(
                "test %s: mIoU %.2f, FB-IoU %.2f on %d episodes",
                label,
                results["miou"],
                results["fbiou"],
                results["episodes"],
            )
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
        per_epoch = trainer.num_training_batches
        per_epoch = per_epoch if isinstance(per_epoch, int) and per_epoch > 0 else None
        return {
            "steps": trainer.global_step,
            # Completed epochs, and the steps as a fraction of an epoch (a run stopped by
            # max_steps in its first epoch has 0 completed and, say, 0.19 run).
            "epochs_completed": trainer.global_step // per_epoch if per_epoch else None,
            "epochs": round(trainer.global_step / per_epoch, 3) if per_epoch else None,
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


def interrupted_hint(run_dir: Path, step: int) -> str:
    """What a user can do after stopping a run with Ctrl-C."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return (
            f"training interrupted at step {step}, before its first epoch ended: no checkpoint "
            "was written, so there is nothing to resume; run the command again"
        )
    return (
        f"training interrupted at step {step}. To resume from the last finished epoch ({last}), "
        f"run the same command with: hydra.run.dir={run_dir} ckpt_path=last (the unfinished "
        "epoch is run again)"
    )


def _existing(folder: Path, name: str) -> str | None:
    path = folder / name
    return str(path) if path.is_file() else None


class ValidateWhenStopped(L.Callback):
    """Validate once more when ``trainer.max_steps`` ends training inside an epoch.

    Lightning stops at ``max_steps`` without validating, so a short run (``trainer.max_steps=3``)
    would end without a validation score and without ``checkpoints/best.ckpt``. Asking the trainer
    to stop at that step instead makes it validate first, as it does for early stopping.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        limit = trainer.max_steps
        if limit is not None and limit >= 0 and trainer.global_step >= limit:
            trainer.should_stop = True


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
