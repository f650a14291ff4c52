"""Loggers: optional ones with a sentence that says what to install, and a CSV logger that
keeps its rows across a resume."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger


def wandb_logger(**kwargs: Any):
    """A Lightning ``WandbLogger``; needs the ``wandb`` extra."""
    try:
        import wandb  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "logger=wandb needs Weights & Biases: pip install 'vrpsam[wandb]' "
            "(or choose logger=csv / logger=tensorboard)"
        ) from err
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(**kwargs)


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger``, except that a resumed run keeps the rows of the epochs before
    the checkpoint it resumes from (the plain logger deletes ``metrics.csv`` when it finds one).

    ``vrpsam-train`` calls :meth:`resume_from` with the checkpoint's global step before fitting.
    Lightning logs the rows of the optimizer step ``k`` (0-based) under ``step = k``, so a
    checkpoint taken after ``n`` steps covers the rows with ``step < n``; later rows (the
    interrupted, unfinished epoch) are dropped, since the resumed run logs them again. A fresh
    run in a used folder starts a new file, as Lightning's does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_until: int | None = None

    def resume_from(self, step: int) -> None:
        """Keep the rows with ``row step < step`` of an existing ``metrics.csv``."""
        self._keep_until = int(step)

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        rows, keys = _read_rows(path, self._keep_until)
        with warnings.catch_warnings():
            if self._keep_until is not None:  # its "will be deleted" notice is wrong on a resume
                warnings.filterwarnings("ignore", message="Experiment logs directory")
            # Lightning's writer removes an existing metrics.csv when it is created (on rank 0
            # only; other ranks get a stand-in); the kept rows are written back at once.
            experiment = super().experiment
        if rows and self._experiment is not None:
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)
            self._experiment.metrics_keys = list(keys)
        return experiment


def _read_rows(path: Path, keep_until: int | None) -> tuple[list[dict], list[str]]:
    if keep_until is None or not path.is_file():
        return [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        keys = list(reader.fieldnames or [])
        rows = [row for row in reader if row.get("step") and int(float(row["step"])) < keep_until]
    return rows, keys
