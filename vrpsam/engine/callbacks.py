"""Run reports that do not depend on the chosen logger: ``metrics.json`` and a training curve."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch

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
    """What a user can do after stopping a run with Ctrl-C (or SIGTERM)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return (
            f"training interrupted at step {step}, before its first checkpoint: there is nothing "
            "to resume; run the command again"
        )
    return (
        f"training interrupted at step {step}. To resume from its last checkpoint ({last}), run "
        f"the same command with: hydra.run.dir={run_dir} ckpt_path=last (the run then goes on "
        "exactly as an uninterrupted one from that checkpoint's step)"
    )


def _flat(loaders: Any) -> list:
    """The loaders of ``trainer.train_dataloader`` (one, or a list or dict of them)."""
    if isinstance(loaders, dict):
        return list(loaders.values())
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]


def _existing(folder: Path, name: str) -> str | None:
    path = folder / name
    return str(path) if path.is_file() else None


class ValidateWhenStopped(L.Callback):
    """Stop at the step limit, validating first when it falls inside an epoch.

    Lightning stops at ``max_steps`` without validating, so a short run (``trainer.max_steps=3``)
    would end without a validation score and without ``checkpoints/best.ckpt``. Asking the trainer
    to stop at that step instead makes it validate first, as it does for early stopping.

    Args:
        max_steps: the run's step limit; None reads ``trainer.max_steps``. ``vrpsam-train`` passes
            ``trainer.max_steps`` here and gives Lightning none (see
            :func:`vrpsam.engine.training.train`).
    """

    def __init__(self, *, max_steps: int | None = None) -> None:
        self.max_steps = max_steps

    def _reached(self, trainer) -> bool:
        limit = trainer.max_steps if self.max_steps is None else self.max_steps
        return limit is not None and limit >= 0 and trainer.global_step >= limit

    def on_train_start(self, trainer, pl_module) -> None:
        if self._reached(trainer):  # a finished run resumed with the same limit
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._reached(trainer):
            trainer.should_stop = True


class SaveOnInterrupt(L.Callback):
    """Ctrl-C (SIGINT) or SIGTERM (a cluster's pre-emption) stops training after the running
    optimizer step and writes ``last.ckpt`` there, so that ``ckpt_path=last`` resumes at that very
    step (the loader's position in the epoch included) instead of rerunning the unfinished epoch.

    A step that validation follows (the epoch's last, or one at ``val_check_interval``) is not
    saved: Lightning resumes such a checkpoint as if the validation had run. The run then stops
    after that validation and the epoch's own checkpoints. A second signal stops at once; the run
    then resumes from its previous checkpoint.

    Args:
        path: the checkpoint to write (the run's ``checkpoints/last.ckpt``).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, *, path: str | Path) -> None:
        self.path = Path(path)
        self.requested = False
        self._previous: dict[int, Any] = {}
        self._saving = False  # this callback is writing the checkpoint (inside an epoch)
        self._resumed: dict[str, Any] | None = None  # what a checkpoint inside an epoch restores

    def state_dict(self) -> dict[str, Any]:
        return {"inside_epoch": self._saving}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        inside = checkpoint.get("callbacks", {}).get(self.state_key, {}).get("inside_epoch")
        if not inside:
            return
        loops = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
        self._resumed = {
            "loaders": loops.get("combined_loader", []),
            "rng": checkpoint.get("vrpsam", {}).get("rng", {}).get("torch"),
        }

    def _request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("stopping after this training step (signal again to stop at once)")

    def _agreed(self, trainer) -> bool:
        if trainer.world_size > 1:  # every rank stops at the same step and saves together
            return trainer.strategy.reduce_boolean_decision(self.requested, all=False)
        return self.requested

    def on_train_start(self, trainer, pl_module) -> None:
        self.requested = False
        if self._resumed:
            # Lightning builds the training loader before it restores the loops (for the LR
            # schedule's length), so it never hands the loader its saved position: do it here,
            # before the first batch is drawn.
            loaders = [x for x in _flat(trainer.train_dataloader) if hasattr(x, "load_state_dict")]
            for loader, state in zip(loaders, self._resumed["loaders"], strict=False):
                loader.load_state_dict(state)
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        for number in self.SIGNALS:
            self._previous[number] = signal.getsignal(number)
            signal.signal(number, self._request)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = trainer.val_check_batch  # batches between validations inside an epoch
        validates_next = (
            trainer.should_stop
            or batch_idx + 1 >= trainer.num_training_batches
            or (isinstance(every, int) and every > 0 and (batch_idx + 1) % every == 0)
        )
        if validates_next or not self._agreed(trainer):
            return
        # Here the step's optimizer and scheduler updates are done, as in Lightning's own
        # every_n_train_steps checkpoints, which it resumes from inside the epoch.
        self._saving = True
        try:
            trainer.save_checkpoint(self.path)
        finally:
            self._saving = False
        logger.warning("saved the state of step %d to %s", trainer.global_step, self.path)
        raise KeyboardInterrupt

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        rng = (self._resumed or {}).get("rng")
        if rng is not None:
            # The random state of the interrupted run at this point: restored here, as building
            # the loaders' iterators since the checkpoint was loaded drew from it.
            torch.set_rng_state(rng)
        self._resumed = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._agreed(trainer):  # the last epoch's end wrote last.ckpt: nothing to add
            raise KeyboardInterrupt

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()
        if self.requested:  # training finished meanwhile: stop before testing
            raise KeyboardInterrupt

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


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
