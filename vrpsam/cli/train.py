"""``vrpsam-train``: the Hydra entry point of :func:`vrpsam.engine.training.train`.

vrpsam-train experiment=pascal5i_resnet50 data.fold=0 data.root=/data/VOC2012
vrpsam-train -m experiment=pascal5i_resnet50 data.fold=0,1,2,3   # the folds one after another
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vrpsam.cli.errors import reported
from vrpsam.conf import CONFIG_DIR
from vrpsam.engine.runtime import world_size
from vrpsam.engine.training import train

log = logging.getLogger(__name__)

IN_PROCESS_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
LOCAL_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"


def check_launch(cfg: DictConfig, *, multirun: bool, launcher: Any = None) -> None:
    """Refuse launches that cannot work, before anything is built.

    Hydra's basic launcher (``launcher`` None: the default) runs the jobs of a multirun in this one
    process, where Lightning cannot start (or join) one process group per job: there, each job must
    use one device. A cluster launcher (submitit) gives each job processes of its own, so a
    multi-process job is fine. Under SLURM the job's rank layout must match the Trainer's, which
    Lightning reads back from SLURM (``tasks_per_node`` = ``trainer.devices``, ``nodes`` =
    ``trainer.num_nodes``); submitit's local executor sets no such layout, so there each job is one
    task and Lightning starts its other ranks itself.

    Args:
        cfg: the run's config.
        multirun: whether this job is one of a Hydra multirun (``-m``).
        launcher: the ``hydra.launcher`` node (its ``_target_`` names the launcher).

    Raises:
        ValueError: pointing to the cluster launcher, or to the launcher keys to change.
    """
    target = str((launcher or {}).get("_target_") or IN_PROCESS_LAUNCHER)
    processes = world_size(cfg.trainer)
    if multirun and target == IN_PROCESS_LAUNCHER and processes > 1:
        raise ValueError(
            "vrpsam-train -m runs its jobs one after another in this process, so each job must "
            "use one device; for one multi-GPU job per fold use a cluster launcher, e.g. "
            "hydra/launcher=submitit_slurm (pip install 'vrpsam[cluster]'; see "
            "scripts/launch_ddp.md), or scripts/run_folds.sh"
        )
    if target == LOCAL_LAUNCHER and int(launcher.get("tasks_per_node", 1)) != 1:
        raise ValueError(
            "hydra/launcher=submitit_local would start hydra.launcher.tasks_per_node="
            f"{launcher.get('tasks_per_node')} copies of each job, which Lightning cannot tell "
            "apart: set hydra.launcher.tasks_per_node=1 (Lightning starts the processes of "
            "trainer.devices itself)"
        )
    if target == SLURM_LAUNCHER:
        nodes = int(cfg.trainer.get("num_nodes", 1) or 1)
        layout = (int(launcher.get("tasks_per_node", 1)), int(launcher.get("nodes", 1)))
        if layout != (processes // nodes, nodes):
            raise ValueError(
                f"hydra/launcher=submitit_slurm starts hydra.launcher.tasks_per_node={layout[0]} "
                f"processes on each of hydra.launcher.nodes={layout[1]} nodes, but the Trainer "
                f"runs {processes // nodes} per node on {nodes} (trainer.devices, "
                f"trainer.num_nodes): set hydra.launcher.tasks_per_node={processes // nodes} "
                f"hydra.launcher.nodes={nodes} (scripts/launch_ddp.md)"
            )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@reported
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    check_launch(cfg, multirun=hydra_cfg.mode == RunMode.MULTIRUN, launcher=hydra_cfg.launcher)
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
