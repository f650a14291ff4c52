"""The benchmark's settings: Hydra configs, synthetic data and random-weight files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from vrpsam.conf import CONFIG_DIR


@dataclass(frozen=True)
class Scale:
    """Sizes of one benchmark mode (full: the paper's 512 px / ResNet-50; quick: CI-sized)."""

    name: str
    backbone: str
    image_size: int
    sam_frame: int  # SAM's input frame: 1024 for the official SAMs
    uncached_sam: str  # the SAM architecture of the uncached loop
    images: int  # synthetic images in the benchmark's data tree
    train_steps: int  # measured steps of the cached training loop (after warm-up)
    floor_steps: int
    uncached_steps: int  # timed from the first step's start, no warm-up
    warmup: int
    eval_episodes: int  # demo-configuration evaluation
    r50_eval_episodes: int  # main-configuration evaluation, extrapolated to 1000
    predictor_targets: int


# Step times are taken at step ends and the first ``warmup + 1`` steps are excluded, so warmup=1
# skips the first two steps (warmup=0 only the first, which holds the one-time costs: enough in
# the full mode, whose steps take seconds). The uncached loop is timed over all its steps, from
# the first start.
FULL = Scale("full", "resnet50", 512, 1024, "vit_b", 48, 4, 4, 1, 0, 1000, 4, 10)
QUICK = Scale("quick", "resnet18", 256, 256, "tiny", 40, 6, 6, 2, 1, 200, 6, 10)
BATCH = 2  # episodes per step: the "batch 2"


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def write_data(root: Path, images: int, size: int = 256) -> Path:
    from vrpsam.data.synthetic import MARKER, write_voc_tree

    if not (root / MARKER).is_file():
        write_voc_tree(root, images=images, seed=0, size=size, overwrite=root.exists())
    return root


def write_weights(folder: Path, backbone: str, sam_kwargs: dict) -> tuple[Path, Path]:
    """Random frozen weights saved as files (a feature cache is tied to weight files)."""
    from vrpsam.modeling.vrp_sam import build_vrp_sam

    tag = f"{backbone}_tiny{sam_kwargs.get('image_size')}"
    sam_file, backbone_file = folder / f"sam_{tag}.pth", folder / f"{tag}_backbone.pth"
    if not (sam_file.is_file() and backbone_file.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        donor = build_vrp_sam(backbone=backbone, sam="tiny", sam_kwargs=sam_kwargs)
        torch.save(donor.sam.sam.state_dict(), sam_file)
        torch.save(donor.backbone.body.state_dict(), backbone_file)
    return sam_file, backbone_file


def main_overrides(scale: Scale, work: Path, run: str, *, cached: bool, fast_pseudo_mask=False):
    """The measured training setting: ``scale.backbone`` at ``scale.image_size``, batch 2,
    1-shot mask references, SAM's frame at ``scale.sam_frame``.

    Cached runs read SAM embeddings and backbone features from the disk cache, so SAM's image
    encoder is never built and its architecture does not matter: the cache is built with a tiny
    encoder whose embeddings have the official shape (256×64×64 at a 1024 frame), which keeps
    the benchmark short. Uncached runs build ``scale.uncached_sam`` (vit_b in the full mode).
    """
    frame = {"image_size": scale.sam_frame}
    sam_file, backbone_file = write_weights(work / "weights", scale.backbone, frame)
    common = [
        "data=synthetic",
        f"data.root={work / 'data'}",
        f"data.image_size={scale.image_size}",
        "data.num_workers=0",
        f"model/backbone={scale.backbone}",
        f"model.backbone={scale.backbone}",  # explicit: eval.yaml nulls the group's values
        f"model.backbone_checkpoint={backbone_file}",
        f"model.mask_before_high={not fast_pseudo_mask}",
        f"total_batch_size={BATCH}",
        "data.shot=1",
        "data.annotation=mask",
        "cache_features=none",
        f"paths.output_dir={work / 'out'}",
        f"paths.run_dir={work / 'runs' / run}",
    ]
    if cached:
        return [
            *common,
            "model/sam=tiny",
            "model.sam=tiny",
            f"model.sam_kwargs={{image_size:{scale.sam_frame}}}",
            f"model.sam_checkpoint={sam_file}",
            # One cache serves both pseudo-masks: its features do not depend on the choice.
            f"cache.dir={work / 'cache' / 'main'}",
            "cache.backbone=true",
        ]
    if scale.uncached_sam == "tiny":
        return [*common, "model/sam=tiny", f"model.sam_kwargs={{image_size:{scale.sam_frame}}}"]
    return [*common, f"model/sam={scale.uncached_sam}", "model.sam_checkpoint=null"]


def demo_overrides(work: Path, run: str) -> list[str]:
    """The demo configuration (ResNet-18 + tiny SAM at 128 px) with a disk cache."""
    from omegaconf import OmegaConf

    from vrpsam.conf import experiment_values

    sam_kwargs = OmegaConf.to_container(experiment_values("demo").model.sam_kwargs)
    sam_file, backbone_file = write_weights(work / "weights", "resnet18", sam_kwargs)
    return [
        "experiment=demo",
        f"data.root={work / 'demo_data'}",
        f"model.sam_checkpoint={sam_file}",
        f"model.backbone_checkpoint={backbone_file}",
        f"cache.dir={work / 'cache' / 'demo'}",
        "cache.backbone=true",
        "cache_features=none",
        f"paths.output_dir={work / 'out'}",
        f"paths.run_dir={work / 'runs' / run}",
    ]


def train_loop_overrides(steps: int) -> list[str]:
    """Training only, for ``steps`` steps, timed by :class:`~vrpsam.bench.measure.StepTimer`."""
    return [
        f"data.train_episodes_per_epoch={steps * BATCH}",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
        "test_after_training=false",
        "test_before_training=false",
        "~logger",
        "~callbacks",
    ]
