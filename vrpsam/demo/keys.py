"""Keys of the demo's reusable outputs (the synthetic tree, the stand-in weights).

A reused output must never change a result, so each is stored under a key of everything that
shapes it: the settings and seeds, and a fingerprint of the source code that writes it (and of the
torch/numpy versions, whose numerics shape fitted weights). Change any of them and the demo
writes a new tree or fits new stand-ins instead of mixing in an older version's.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

DATA_CODE = (
    "vrpsam.data.synthetic",
    "vrpsam.data.synthetic_scenes",
    "vrpsam.data.folds",
    "vrpsam.data.pascal",
    "vrpsam.data.coco",
    "vrpsam.data.reading",
)
STANDIN_CODE = (
    "vrpsam.demo.standins",
    "vrpsam.modeling.sam",
    "vrpsam.engine.losses",
    "vrpsam.data.transforms",
    "vrpsam.data.sources",
)


def code_fingerprint(modules: tuple[str, ...]) -> str:
    """SHA-256 over the source files of ``modules`` and the numeric libraries' versions."""
    import numpy
    import torch

    digest = hashlib.sha256(f"torch {torch.__version__} numpy {numpy.__version__}".encode())
    for name in modules:
        digest.update(name.encode())
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()


def key(**parts: Any) -> str:
    """A short stable key of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


RECORDED_LIBRARIES = (
    "torch", "torchvision", "numpy", "segment-anything", "timm", "lightning",
    "opencv-python-headless", "pillow", "albumentations", "scipy",
)  # fmt: skip
"""The libraries whose numerics shape the demo's figures (recorded beside them)."""


def environment() -> dict[str, Any]:
    """What a run's figures depend on besides the code: library versions and the CPU kernels."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for name in RECORDED_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "libraries": versions,
    }
