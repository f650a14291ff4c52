"""Optional loggers, with a sentence that says what to install when their package is missing."""

from __future__ import annotations

from typing import Any


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
