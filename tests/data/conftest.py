"""Small synthetic VOC- and COCO-format trees shared by the data tests (written once a session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vrpsam.data.synthetic import write_coco_tree, write_voc_tree

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


@pytest.fixture
def voc_copy(synthetic_voc_root: Path, tmp_path: Path) -> Path:
    """A private copy of the VOC tree that a test may damage."""
    return Path(shutil.copytree(synthetic_voc_root, tmp_path / "VOC2012"))


@pytest.fixture
def coco_copy(synthetic_coco_root: Path, tmp_path: Path) -> Path:
    """A private copy of the COCO tree (without its index cache) that a test may damage."""
    ignore = shutil.ignore_patterns(".vrpsam_index_*")
    return Path(shutil.copytree(synthetic_coco_root, tmp_path / "coco", ignore=ignore))
