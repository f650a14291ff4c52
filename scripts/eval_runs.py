"""One vrpsam-eval run from a script (the comparison scripts share it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_eval(run_dir: Path, overrides: list[str]) -> Path:
    """Run ``vrpsam-eval`` (of this Python's environment) with ``overrides`` into ``run_dir``;
    returns the ``eval.json`` it wrote. A failed run stops the script."""
    command = [str(Path(sys.executable).parent / "vrpsam-eval"), *overrides,
               f"hydra.run.dir={run_dir}"]  # fmt: skip
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return run_dir / "eval.json"
