"""``vrpsam-data``: write synthetic trees, verify real ones, write fixed test episode lists.

Examples::

    vrpsam-data synthetic --format voc --out /data/synthetic_voc
    vrpsam-data verify --dataset pascal --root /data/VOCdevkit/VOC2012
    vrpsam-data episodes --dataset pascal --root /data/VOCdevkit/VOC2012 --fold 0 --shot 1 \\
        --seed 0 --n 1000 --out episodes/pascal_f0_1shot_s0.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vrpsam.data.fileio import DatasetError

_MIN_PIXELS_HELP = "pixels a class needs in an image to be listed (default 2048, PFENet's rule)"


def _synthetic(args: argparse.Namespace) -> int:
    from vrpsam.data.synthetic import write_coco_tree, write_voc_tree

    writer = write_voc_tree if args.format == "voc" else write_coco_tree
    options = {"seed": args.seed, "size": args.size, "overwrite": args.force}
    if args.images is not None:
        options["images"] = args.images
    if args.workers is not None:
        options["workers"] = args.workers
    start = time.perf_counter()
    out = writer(args.out, **options)
    print(f"wrote a synthetic {args.format} tree to {out} in {time.perf_counter() - start:.1f} s")
    dataset = "pascal" if args.format == "voc" else "coco"
    print(f"check it with: vrpsam-data verify --dataset {dataset} --root {out}")
    return 0


def _size_option(dataset: str, split: str, min_pixels: int | None) -> dict[str, int]:
    """The reader's size-threshold keyword: ``min_area`` for COCO splits, ``min_pixels`` for VOC."""
    if min_pixels is None:
        return {}
    on_coco = dataset == "coco" or (dataset == "coco2pascal" and split != "test")
    return {"min_area" if on_coco else "min_pixels": min_pixels}


def _verify(args: argparse.Namespace) -> int:
    from vrpsam.data.verify import verify_tree

    options = _size_option(args.dataset, "train", args.min_pixels)
    report = verify_tree(args.dataset, args.root, full=args.full, **options)
    print(report.format())
    return 0 if report.ok else 1


def _episodes(args: argparse.Namespace) -> int:
    from vrpsam.data.episodes import make_test_episodes, save_episodes
    from vrpsam.data.sources import build_source

    options = _size_option(args.dataset, args.split, args.min_pixels)
    if args.pascal_root:
        options["pascal_root"] = args.pascal_root
    source = build_source(args.dataset, args.root, args.fold, args.split, **options)
    episodes = make_test_episodes(source, shot=args.shot, seed=args.seed, n=args.n)
    meta = {
        "dataset": args.dataset,
        "fold": args.fold,
        "split": args.split,
        "shot": args.shot,
        "seed": args.seed,
        "n": args.n,
        "classes": list(source.classes),
    }
    path = save_episodes(args.out, episodes, meta)
    print(
        f"wrote {len(episodes)} {args.dataset} fold-{args.fold} {args.shot}-shot episodes to {path}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vrpsam-data``."""
    parser = argparse.ArgumentParser(prog="vrpsam-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    synthetic = commands.add_parser("synthetic", help="write a synthetic VOC- or COCO-format tree")
    synthetic.add_argument("--format", choices=("voc", "coco"), required=True)
    synthetic.add_argument("--out", type=Path, required=True, help="folder to create")
    synthetic.add_argument("--images", type=int, help="total images (default: voc 600, coco 1200)")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--size", type=int, default=256, help="image side in pixels")
    synthetic.add_argument("--workers", type=int, help="rendering processes (default: CPUs, ≤ 4)")
    synthetic.add_argument("--force", action="store_true", help="write into a non-empty folder")
    synthetic.set_defaults(run=_synthetic)

    verify = commands.add_parser("verify", help="check a dataset tree and print its fold counts")
    verify.add_argument("--dataset", choices=("pascal", "coco"), required=True)
    verify.add_argument("--root", type=Path, required=True, help="the folder data.root points at")
    verify.add_argument("--full", action="store_true", help="decode every image, not a sample")
    verify.add_argument("--min-pixels", type=int, help=_MIN_PIXELS_HELP)
    verify.set_defaults(run=_verify)

    episodes = commands.add_parser("episodes", help="write a fixed episode list")
    episodes.add_argument("--dataset", choices=("pascal", "coco", "coco2pascal"), required=True)
    episodes.add_argument("--root", type=Path, required=True)
    episodes.add_argument("--pascal-root", type=Path, help="VOC2012 folder (coco2pascal test)")
    episodes.add_argument("--fold", type=int, required=True)
    episodes.add_argument("--split", choices=("test", "val"), default="test")
    episodes.add_argument("--shot", type=int, default=1)
    episodes.add_argument("--seed", type=int, default=0)
    episodes.add_argument("--n", type=int, default=1000, help="number of episodes")
    episodes.add_argument("--out", type=Path, required=True, help="episode list file (JSON)")
    episodes.add_argument("--min-pixels", type=int, help=_MIN_PIXELS_HELP)
    episodes.set_defaults(run=_episodes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vrpsam-data`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Data errors (missing or broken files, bad folds) print one ``error:`` line and return 2; a
    ``verify`` that finds problems returns 1.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, FileExistsError, DatasetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
