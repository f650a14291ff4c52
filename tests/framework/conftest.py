"""Composing the real Hydra configs with small settings, for tests of the entry points."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vrpsam.conf import CONFIG_DIR

# The demo experiment, shrunk: a few episodes, one epoch, no progress bars.
SMALL = [
    "experiment=demo",
    "data.train_episodes_per_epoch=16",
    "data.val_episodes=4",
    "data.test_episodes=4",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]
TINY_SAM = {"image_size": 128, "patch_size": 8, "window_size": 8}


@pytest.fixture(scope="session")
def compose_cfg(synthetic_voc_root: Path):
    """``compose_cfg(name, out_dir, *overrides, run="run")``: a config writing under out_dir."""

    def make(name: str, out_dir: Path, *overrides: str, run: str = "run"):
        base = [f"paths.output_dir={out_dir}", f"paths.run_dir={out_dir / run}"]
        if name in ("train", "eval", "build_cache"):
            base += [*SMALL, f"data.root={synthetic_voc_root}"]
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=name, overrides=[*base, *overrides])

    return make


@pytest.fixture
def make_cfg(compose_cfg, tmp_path: Path):
    """``make_cfg(name, *overrides, run="run")`` under this test's tmp_path."""
    return lambda name, *overrides, run="run": compose_cfg(name, tmp_path, *overrides, run=run)


@pytest.fixture(scope="session")
def demo_run(compose_cfg, frozen_files, tmp_path_factory):
    """The short training run of the demo's tiny models (frozen parts from ``frozen_files``, test
    before and after training), trained once a session for every test that only reads it.

    Read-only by convention: a test that changes it works on a copy, and evaluations of its
    checkpoint write under the test's own folder. Keys: ``run`` (the run folder), ``ckpt`` (its
    best.ckpt), ``metrics`` (what train returned) and ``module`` (the trained Lightning module).
    """
    from vrpsam.engine.training import train

    out = tmp_path_factory.mktemp("demo_run")
    sam_file, backbone_file = frozen_files
    cfg = compose_cfg(
        "train",
        out,
        f"model.sam_checkpoint={sam_file}",
        f"model.backbone_checkpoint={backbone_file}",
    )
    metrics, objects = train(cfg)
    run = out / "run"
    return {
        "run": run,
        "ckpt": run / "checkpoints" / "best.ckpt",
        "metrics": metrics,
        "module": objects["module"],
    }


@pytest.fixture(scope="session")
def frozen_files(tmp_path_factory):
    """SAM and backbone weight files of the demo's tiny models (random weights, saved once)."""
    from vrpsam import build_vrp_sam

    folder = tmp_path_factory.mktemp("frozen")
    donor = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs=TINY_SAM)
    sam_file, backbone_file = folder / "sam_tiny.pth", folder / "resnet18.pth"
    torch.save(donor.sam.sam.state_dict(), sam_file)
    torch.save(donor.backbone.body.state_dict(), backbone_file)
    return sam_file, backbone_file
