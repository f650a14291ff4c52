"""``vrpsam-eval``: the Hydra entry point of :func:`vrpsam.engine.evaluation.evaluate`.

vrpsam-eval ckpt_path=RUN/checkpoints/best.ckpt data.fold=0 eval.shot=1
vrpsam-eval method=persam model.sam=vit_h model.sam_checkpoint=sam_vit_h_4b8939.pth data.fold=0
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from vrpsam.cli.errors import reported
from vrpsam.conf import CONFIG_DIR
from vrpsam.engine.evaluation import evaluate

log = logging.getLogger(__name__)


def headline(result: dict) -> str:
    """The last line a script reads: the task's headline figures, and the frozen parts that ran
    on random weights (``random_frozen_weights=true``: the figures mean nothing)."""
    parts = result.get("random_frozen_weights")
    line = _figures(result)
    return f"{line} (random frozen weights: {', '.join(parts)})" if parts else line


def _figures(result: dict) -> str:
    if "jf_mean" in result:  # video
        return f"J&F {result['jf_mean']:.2f} J {result['j_mean']:.2f} F {result['f_mean']:.2f}"
    if result.get("task") == "semantic":
        line = f"mIoU {result['miou']:.2f} pixel accuracy {result['pixel_accuracy']:.2f}"
        rate = result.get("presence", {}).get("false_positive_rate")
        return line if rate is None else f"{line} false positives {rate:.2f}"
    line = f"mIoU {result['miou']:.2f} FB-IoU {result['fbiou']:.2f}"
    if "negative_fp_rate" in result:
        line += f" false positives {result['negative_fp_rate']:.2f}"
    return line


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@reported
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    # The command line tells an override from a config default: what it leaves unset of the
    # episode side (dataset folder, reader options) comes from the checkpoint.
    result = evaluate(cfg, overrides=list(HydraConfig.get().overrides.task))
    log.info("wrote %s", Path(cfg.paths.run_dir) / "eval.json")
    print(headline(result))


if __name__ == "__main__":
    main()
