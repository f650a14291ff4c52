"""``vrpsam-train``: the Hydra entry point of :func:`vrpsam.engine.training.train`.

vrpsam-train experiment=pascal5i_resnet50 data.fold=0 data.root=/data/VOC2012
vrpsam-train -m experiment=pascal5i_resnet50 data.fold=0,1,2,3   # the folds one after another
"""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vrpsam.cli.errors import reported
from vrpsam.conf import CONFIG_DIR
from vrpsam.engine.runtime import world_size
from vrpsam.engine.training import train

log = logging.getLogger(__name__)


def check_launch(cfg: DictConfig, *, multirun: bool) -> None:
    """Refuse a Hydra multirun of multi-process runs: Hydra's local launcher runs the jobs in this
    one process, where Lightning cannot start (or join) one process group per job.

    Raises:
        ValueError: pointing to the cluster launcher, which gives each job processes of its own.
    """
    if multirun and world_size(cfg.trainer) > 1:
        raise ValueError(
            "vrpsam-train -m runs its jobs one after another in this process, so each job must "
            "use one device; for one multi-GPU job per fold use a cluster launcher, e.g. "
            "hydra/launcher=submitit_slurm (pip install hydra-submitit-launcher; see "
            "scripts/launch_ddp.md), or scripts/run_folds.sh"
        )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@reported
def main(cfg: DictConfig) -> None:
    # A cluster launcher (submitit) runs each job in processes of its own: multi-GPU jobs are fine.
    launcher = str(HydraConfig.get().runtime.choices.get("hydra/launcher", "basic"))
    check_launch(cfg, multirun=HydraConfig.get().mode == RunMode.MULTIRUN and launcher == "basic")
    metrics, objects = train(cfg)
    out = objects["run_dir"]
    OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)
    best = (metrics.get("val_best") or {}).get("miou")
    test = (metrics.get("test") or {}).get("miou")
    log.info("run folder: %s", out)
    if best is not None:
        log.info("best val mIoU %.2f", best)
    if test is not None:
        log.info("test mIoU %.2f", test)


if __name__ == "__main__":
    main()
