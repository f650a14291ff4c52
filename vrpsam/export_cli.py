"""``vrpsam-export``: a training checkpoint → ``model.safetensors`` + ``config.json``.

vrpsam-export ckpt_path=RUN/checkpoints/best.ckpt out_dir=exports/pascal5i_fold0
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vrpsam.checkpoints import load_trained_model
from vrpsam.export import export_model
from vrpsam.train import CONFIG_PATH


def export(cfg: DictConfig) -> Path:
    """Export the checkpoint named by ``cfg.ckpt_path`` into ``cfg.out_dir``.

    The export carries the checkpoint's protocol, training info and frozen-file record; the
    frozen files must be found (given or at their recorded paths) so that the record is checked.
    """
    model, info = load_trained_model(
        ckpt_path=cfg.ckpt_path,
        sam_checkpoint=cfg.get("sam_checkpoint"),
        backbone_checkpoint=cfg.get("backbone_checkpoint"),
        random_frozen_weights=bool(cfg.get("random_frozen_weights")),
    )
    metrics_file = Path(cfg.ckpt_path).resolve().parent.parent / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    training = {k: v for k, v in info.items() if k not in ("protocol", "frozen_weights")}
    return export_model(
        model,
        cfg.out_dir,
        frozen_record=info.get("frozen_weights"),
        protocol=info.get("protocol"),
        training={**training, "checkpoint": str(cfg.ckpt_path)},
        metrics={"val_best": metrics.get("val_best"), "test": metrics.get("test")},
    )


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    out = export(cfg)
    size = (out / "model.safetensors").stat().st_size
    print(
        f"exported {out / 'model.safetensors'} ({size / 2**20:.1f} MiB) and {out / 'config.json'}"
    )


if __name__ == "__main__":
    main()
