"""Shared test settings: deterministic seeds, and small synthetic trees written once a session."""

import os

# OpenMP threads that wait for work sleep instead of spinning. On a small machine shared with other
# jobs a spinning thread holds a core that the thread it waits for needs: the short trainings of
# these tests then ran ten times slower (67 s instead of 8 s on 2 busy cores). Set before torch
# loads its OpenMP runtime, which reads it once; the subprocesses of the tests inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from vrpsam.data.synthetic import write_coco_tree, write_voc_tree


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# The trees use 128-pixel images to stay fast; at that size PFENet's 2048-pixel rule would drop most
# objects, so the tests that read them list a class from 400 pixels on (min_pixels / min_area).


@pytest.fixture(scope="session")
def synthetic_voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VOC2012/SBD-style tree: 112 train + 48 val images of 128×128 (read-only by convention)."""
    out = tmp_path_factory.mktemp("voc") / "VOC2012"
    return write_voc_tree(out, images=160, size=128, seed=0, workers=1)


@pytest.fixture(scope="session")
def synthetic_coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO 2014-style tree: 325 train2014 + 175 val2014 images of 128×128."""
    out = tmp_path_factory.mktemp("coco") / "coco"
    return write_coco_tree(out, images=500, size=128, seed=0, workers=1)


@dataclass(frozen=True)
class InstalledWheel:
    """The package as a wheel installs it: ``site`` (the ``--target`` folder, with ``bin/``) and
    ``env`` (this environment with that folder first on the path, for its dependencies)."""

    site: Path
    env: dict


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    """A wheel built from a clean copy of the sources (a stale ``build/`` of the checkout cannot
    fill in a missing file), installed into a folder of its own without its dependencies."""
    root = Path(__file__).resolve().parents[1]
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    for name in ("vrpsam", "conf"):
        shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, source / name)
    wheels = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True, timeout=600)  # fmt: skip
    site = work / "site"
    wheel = next(wheels.glob("vrpsam-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, timeout=600)  # fmt: skip
    return InstalledWheel(site, {**os.environ, "PYTHONPATH": str(site)})
