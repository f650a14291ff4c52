"""Private copies of the session's synthetic trees for tests that damage them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def voc_copy(synthetic_voc_root: Path, tmp_path: Path) -> Path:
    """A private copy of the VOC tree that a test may damage."""
    return Path(shutil.copytree(synthetic_voc_root, tmp_path / "VOC2012"))


@pytest.fixture
def coco_copy(synthetic_coco_root: Path, tmp_path: Path) -> Path:
    """A private copy of the COCO tree (without its index cache) that a test may damage."""
    ignore = shutil.ignore_patterns(".vrpsam_index_*")
    return Path(shutil.copytree(synthetic_coco_root, tmp_path / "coco", ignore=ignore))
