"""``vrpsam-bench`` / ``make bench``: the benchmark's figures and their goals (definitions:
:mod:`vrpsam.bench.run`).

    vrpsam-bench --out bench.json
    vrpsam-bench --quick --out bench.json   # the same definitions at CI size
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vrpsam.artifacts.atomic import atomic_write_json
from vrpsam.bench.run import benchmark, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vrpsam-bench",
        description="speed of training, evaluation and the predictor against their goals",
    )
    parser.add_argument("--out", default="bench.json", help="where to write the figures")
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized: the same definitions, fewer steps"
    )
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    scale = "quick" if args.quick else "full"
    start = time.perf_counter()
    if args.work:
        result = benchmark(scale, Path(args.work))
    else:
        with tempfile.TemporaryDirectory(prefix="vrpsam-bench-") as work:
            result = benchmark(scale, Path(work))
    result["wall_seconds"] = time.perf_counter() - start
    atomic_write_json(args.out, result, indent=2)
    print()
    print(table(result))
    missed = [name for name, goal in result["goals"].items() if not goal["met"]]
    print(f"\ngoals met: {len(result['goals']) - len(missed)} of {len(result['goals'])}"
          + (f" (not met: {', '.join(missed)})" if missed else ""))  # fmt: skip
    print(f"\nwrote {args.out} ({result['wall_seconds']:.0f} s, mode {scale})")


if __name__ == "__main__":
    main()
