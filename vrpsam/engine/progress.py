"""What an evaluation pass shows while it runs, counted in its own units (episodes, images,
sequences) and named after the pass.

* ``trainer.enable_progress_bar=true`` (the default) where Rich can redraw a bar (a terminal,
  Jupyter): Lightning's Rich progress bar, described by the pass's label.
* otherwise (the bar turned off, as the demo and the tests do, or output going to a file or a
  pipe, where a bar would only show its final state): a line on stdout whenever
  :data:`LINE_SECONDS` have passed since the pass began or since the last line, then a closing
  line; a pass shorter than that prints nothing.

Only rank 0 prints. Build the pass's Trainer with :func:`pass_progress`'s flag as
``enable_progress_bar`` (Lightning adds its own bar otherwise); set ``label``/``unit`` on the
callback before each ``trainer.test`` when one trainer runs several passes.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

LINE_SECONDS = 30.0  # between two progress lines (tests set 0: a line per step)


class PassBar(RichProgressBar):
    """Lightning's Rich bar, described by the pass's label (Lightning's reads "Testing"); it
    counts steps: episodes for the baselines, batches for VRP-SAM, images, sequences."""

    def __init__(self, label: str, unit: str) -> None:
        super().__init__()
        self.label, self.unit = label, unit

    @property
    def test_description(self) -> str:
        return self.label


class PassLines(L.Callback):
    """A line such as ``matcher, seed 0: 12/1000 episodes (3 min, about 4 h 7 min left)`` every
    :data:`LINE_SECONDS` and at the end of a pass that printed one; counts units, not batches."""

    def __init__(self, label: str, unit: str) -> None:
        self.label, self.unit = label, unit
        self.done = self.total = self.per_step = 0
        self.start = self.last = 0.0
        self.printed = False

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        loaders = trainer.test_dataloaders
        loader = loaders[0] if isinstance(loaders, list | tuple) else loaders
        self.per_step = int(getattr(loader, "batch_size", None) or 1)
        steps = trainer.num_test_batches[0] if trainer.num_test_batches else 0
        items = steps * self.per_step
        if getattr(loader, "sampler", None) is not None:  # the last batch may be short
            items = min(items, len(loader.sampler))
        self.total = int(items)
        self.done, self.printed = 0, False
        self.start = self.last = time.perf_counter()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.done = min(self.done + self.per_step, self.total)
        now = time.perf_counter()
        if trainer.global_rank != 0:
            return
        if now - self.last >= LINE_SECONDS or (self.done >= self.total and self.printed):
            print(self.line(now), flush=True)
            self.last, self.printed = now, True

    def line(self, now: float) -> str:
        elapsed = now - self.start
        left = elapsed / max(self.done, 1) * (self.total - self.done)
        rest = f", about {_clock(left)} left" if self.done < self.total else ""
        return f"{self.label}: {self.done}/{self.total} {self.unit} ({_clock(elapsed)}{rest})"


def _clock(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"


def _redraws() -> bool:
    """Whether Rich redraws a bar here (else it prints the bar once, at its end)."""
    from rich import get_console

    console = get_console()
    return console.is_jupyter or (console.is_terminal and not console.is_dumb_terminal)


def pass_progress(trainer_cfg: Any, label: str, unit: str) -> tuple[PassBar | PassLines, bool]:
    """The progress callback of a pass and the ``enable_progress_bar`` to build its Trainer with.

    Args:
        trainer_cfg: the ``trainer`` config (its ``enable_progress_bar``, default true).
        label: what runs, e.g. ``"matcher, seed 0"``.
        unit: what one step (or one item of a batch) is, plural: ``"episodes"``, ``"images"``.
    """
    if bool(trainer_cfg.get("enable_progress_bar", True)) and _redraws():
        return PassBar(label, unit), True
    return PassLines(label, unit), False
