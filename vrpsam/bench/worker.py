"""Measurements in this process: ``python -m vrpsam.bench.worker TASK[,TASK...] SCALE WORK``.

Prints one JSON line per task with its result and this process's peak resident memory so far
(tasks whose memory is reported run alone in their process).
"""

from __future__ import annotations

import json
import resource
import sys
import warnings
from pathlib import Path

from vrpsam.bench import measure
from vrpsam.bench.setups import FULL, QUICK

TASKS = {
    "floor": lambda s, w: measure.floor(s, w),
    "floor_fast": lambda s, w: measure.floor(s, w, fast=True),
    "train_cached": lambda s, w: measure.train_loop(s, w, cached=True),
    "train_cached_fast": lambda s, w: measure.train_loop(s, w, cached=True, fast=True),
    "train_uncached": lambda s, w: measure.train_loop(s, w, cached=False),
    "predictor": measure.predictor,
    "eval_demo": lambda s, w: measure.evaluation(s, w, demo=True),
    "eval_main": lambda s, w: measure.evaluation(s, w, demo=False),
    "cache_main": lambda s, w: measure.build_caches(s, w, "main"),
    "cache_demo": lambda s, w: measure.build_caches(s, w, "demo"),
}


def main(argv: list[str]) -> None:
    tasks, scale_name, work = argv
    scale = {"full": FULL, "quick": QUICK}[scale_name]
    warnings.filterwarnings("ignore")
    for task in tasks.split(","):
        result = TASKS[task](scale, Path(work))
        # ru_maxrss is in KiB on Linux.
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"BENCH-RESULT {task} " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
