"""``vrpsam-export``: a training checkpoint → ``model.safetensors`` + ``config.json``.

vrpsam-export ckpt_path=RUN/checkpoints/best.ckpt out_dir=exports/pascal5i_fold0
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from vrpsam.artifacts.exports import WEIGHTS_FILE, export_checkpoint
from vrpsam.cli.errors import reported
from vrpsam.conf import CONFIG_DIR


def export(cfg: DictConfig) -> Path:
    """Export the checkpoint named by ``cfg.ckpt_path`` into ``cfg.out_dir``."""
    return export_checkpoint(
        cfg.ckpt_path,
        cfg.out_dir,
        sam_checkpoint=cfg.sam_checkpoint,
        backbone_checkpoint=cfg.backbone_checkpoint,
        random_frozen_weights=bool(cfg.random_frozen_weights),
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
@reported
def main(cfg: DictConfig) -> None:
    out = export(cfg)
    size = (out / WEIGHTS_FILE).stat().st_size
    print(f"exported {out / WEIGHTS_FILE} ({size / 2**20:.1f} MiB) and {out / 'config.json'}")


if __name__ == "__main__":
    main()
