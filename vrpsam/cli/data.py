r"""``vrpsam-data``: write synthetic trees, verify real ones, write fixed test episode lists.

Examples::

    vrpsam-data synthetic --format voc --out /data/synthetic_voc
    vrpsam-data synthetic --format fss1000 --out /data/synthetic_fss
    vrpsam-data verify --dataset pascal --root /data/VOCdevkit/VOC2012
    vrpsam-data verify --dataset lvis92i --root /data/LVIS
    vrpsam-data episodes --dataset pascal --root /data/VOCdevkit/VOC2012 --fold 0 --shot 1 \\
        --seed 0 --n 1000 --out episodes/pascal_f0_1shot_s0.json
    vrpsam-data episodes --dataset coco --root /data/coco --fold 0 --split train \\
        --protocol official --n 2000 --seed 0 --out coco_f0_train_official.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vrpsam.data.reading import DatasetError
from vrpsam.data.sources import SOURCE_BUILDERS
from vrpsam.data.verify import VERIFIERS

_MIN_PIXELS_HELP = "pixels a class needs in an image to be listed (default 2048, PFENet's rule)"


SYNTHETIC_FORMATS = {"voc": "pascal", "coco": "coco", "fss1000": "fss1000", "lvis": "lvis92i",
                     "davis": "davis2017"}  # fmt: skip
"""``--format`` → the dataset name that ``verify`` and the configs (``data=...``) use for it."""


def _synthetic_other(args: argparse.Namespace) -> int:
    """FSS-1000, LVIS and DAVIS trees (their writers take their own sizes)."""
    options: dict = {"seed": args.seed, "overwrite": args.force}
    if args.format == "fss1000":
        from vrpsam.data.synthetic_fss import write_fss_tree as writer

        options["size"] = args.size if args.size_given else 96
    elif args.format == "lvis":
        from vrpsam.data.synthetic_lvis import write_lvis_tree as writer

        options["size"] = args.size if args.size_given else 128
    else:
        from vrpsam.data.synthetic_davis import write_davis_tree as writer

        if args.size_given:
            options["size"] = (args.size * 3 // 5, args.size)  # DAVIS's 480p aspect, roughly
    start = time.perf_counter()
    out = writer(args.out, **options)
    print(f"wrote a synthetic {args.format} tree to {out} in {time.perf_counter() - start:.1f} s")
    print(
        f"check it with: vrpsam-data verify --dataset {SYNTHETIC_FORMATS[args.format]} --root {out}"
    )
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    import json

    from vrpsam.data.synthetic import MARKER, write_coco_tree, write_voc_tree

    args.size_given = args.size is not None
    if args.format not in ("voc", "coco"):
        for key in ("images", "workers", "min_pixels"):
            if getattr(args, key) is not None:
                raise ValueError(f"--{key.replace('_', '-')} applies to --format voc|coco only")
        return _synthetic_other(args)
    args.size = args.size if args.size_given else 256
    writer = write_voc_tree if args.format == "voc" else write_coco_tree
    options = {"seed": args.seed, "size": args.size, "overwrite": args.force}
    for key in ("images", "workers", "min_pixels"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    start = time.perf_counter()
    out = writer(args.out, **options)
    print(f"wrote a synthetic {args.format} tree to {out} in {time.perf_counter() - start:.1f} s")
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    fewest = ", ".join(f"{split} {n}" for split, n in marker["min_images_per_class"].items())
    print(
        f"made for the size threshold {marker['min_pixels']} pixels (min_pixels / min_area); "
        f"fewest images of a class in a fold split: {fewest}"
    )
    dataset = "pascal" if args.format == "voc" else "coco"
    print(f"check it with: vrpsam-data verify --dataset {dataset} --root {out}")
    return 0


def _size_option(
    dataset: str, split: str, min_pixels: int | None, *, given: bool = True
) -> dict[str, int]:
    """The reader's size-threshold option (``min_pixels`` for VOC, ``min_area`` for COCO and
    LVIS; see :func:`~vrpsam.data.sources.size_threshold_keyword`). ``given``: the user passed
    ``--min-pixels`` (refused for a reader without a threshold), rather than a synthetic tree's
    marker supplying it (then ignored there)."""
    from vrpsam.data.sources import size_threshold_keyword

    if min_pixels is None:
        return {}
    keyword = size_threshold_keyword(dataset, split)
    if keyword is None:
        if given:
            raise ValueError(
                f"{dataset} has no size threshold (every image of a class is listed): "
                "drop --min-pixels"
            )
        return {}
    return {keyword: min_pixels}


def _verify(args: argparse.Namespace) -> int:
    from vrpsam.data.verify import verify_tree

    options = {}
    if args.min_pixels is not None:
        if args.dataset.startswith("davis"):
            raise ValueError(f"{args.dataset} has no size threshold: drop --min-pixels")
        # The verifiers name the threshold as the PASCAL and COCO readers do (LVIS's maps it).
        options = {"min_area" if args.dataset == "coco" else "min_pixels": args.min_pixels}
    report = verify_tree(args.dataset, args.root, full=args.full, **options)
    print(report.format())
    return 0 if report.ok else 1


DATA_CONFIGS = {"pascal": "pascal5i", "coco": "coco20i", "coco2pascal": "coco2pascal",
                "fss1000": "fss1000", "lvis92i": "lvis92i"}  # fmt: skip
"""Dataset name → its config in ``conf/data`` (where the benchmark's episode count is set)."""


def _count(text: str) -> int | None:
    """``--n``: a positive number, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def benchmark_episodes(dataset: str) -> int | None:
    """``test_episodes`` of the dataset's config (its own or ``base.yaml``'s)."""
    from omegaconf import OmegaConf

    from vrpsam.conf import CONFIG_DIR

    folder = Path(CONFIG_DIR) / "data"
    own = OmegaConf.load(folder / f"{DATA_CONFIGS[dataset]}.yaml")
    return (
        own["test_episodes"]
        if "test_episodes" in own
        else OmegaConf.load(folder / "base.yaml")["test_episodes"]
    )


def _episodes(args: argparse.Namespace) -> int:
    from vrpsam.conf import CONFIG_DIR
    from vrpsam.data.datamodule import build_datamodule
    from vrpsam.data.episodes import save_episodes
    from vrpsam.data.sampling import (
        TrainingEpisodeSampler,
        make_test_episodes,
        make_validation_episodes,
    )
    from vrpsam.data.synthetic import recorded_min_pixels
    from vrpsam.engine.protocol import named_protocol

    protocol = named_protocol(args.protocol, args.dataset, CONFIG_DIR)
    # A synthetic tree records the size threshold it was made for (as `verify` reads it).
    given = args.min_pixels is not None
    threshold = args.min_pixels if given else recorded_min_pixels(args.root)
    options = _size_option(args.dataset, args.split, threshold, given=given)
    if args.pascal_root:
        options["pascal_root"] = args.pascal_root
    data = protocol.data_options()
    # The splits as a run of this protocol builds them (hold-out, BAM's filter).
    if not hasattr(args, "n"):  # not given: the benchmark's count
        args.n = benchmark_episodes(args.dataset) if args.split == "test" else 1000
    if args.n is None and args.split != "test":
        raise ValueError("--n all applies to --split test; give a number of episodes")
    datamodule = build_datamodule(
        dataset=args.dataset,
        root=args.root,
        fold=args.fold,
        shot=args.shot,
        source_options=options,
        train_exclude_novel=data.pop("train_exclude_novel"),
        val_split=data["val_split"],
    )
    source = datamodule.source(args.split)
    if source is None:
        raise ValueError(f"{args.dataset} fold {args.fold}: no {args.split} split at {args.root}")
    meta = {"dataset": args.dataset, "fold": args.fold, "split": args.split, "shot": args.shot,
            "seed": args.seed, "n": args.n, "protocol": args.protocol}  # fmt: skip
    if args.split == "train":
        sampler = TrainingEpisodeSampler(
            source=source, shot=args.shot, seed=args.seed, rule=protocol.train_sampling
        )
        episodes = [sampler.episode(0, i) for i in range(args.n)]
        meta.update(sampling=protocol.train_sampling, epoch=0, epoch_length=len(sampler))
    elif args.split == "val":
        episodes = make_validation_episodes(source, shot=args.shot, seed=args.seed, n=args.n)
        meta.update(sampling="balanced")
    else:
        rule = protocol.test_sampling
        episodes = make_test_episodes(source, shot=args.shot, seed=args.seed, n=args.n, rule=rule)
        meta.update(sampling=rule)
    meta["classes"] = sorted({e.class_id for e in episodes})
    meta["n"] = len(episodes)
    path = save_episodes(args.out, episodes, meta)
    print(
        f"wrote {len(episodes)} {args.dataset} fold-{args.fold} {args.split} {args.shot}-shot "
        f"episodes ({meta['sampling']} rule, protocol {args.protocol}) to {path}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vrpsam-data``."""
    parser = argparse.ArgumentParser(prog="vrpsam-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    synthetic = commands.add_parser(
        "synthetic", help="write a synthetic tree in a real dataset's on-disk format"
    )
    synthetic.add_argument("--format", choices=tuple(SYNTHETIC_FORMATS), required=True)
    synthetic.add_argument("--out", type=Path, required=True, help="folder to create")
    synthetic.add_argument("--images", type=int, help="total images (default: voc 600, coco 1200)")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument(
        "--size",
        type=int,
        help="image side in pixels (default: voc/coco 256, fss1000 96, lvis 128; davis: the width, "
        "default 160)",
    )
    synthetic.add_argument("--workers", type=int, help="rendering processes (default: CPUs, ≤ 4)")
    synthetic.add_argument(
        "--min-pixels",
        type=int,
        help="size threshold the class lists are completed for, recorded for verify (default: 400 "
        "up to 256 px, 400·(size/256)² above)",
    )
    synthetic.add_argument("--force", action="store_true", help="write into a non-empty folder")
    synthetic.set_defaults(run=_synthetic)

    verify = commands.add_parser("verify", help="check a dataset tree and print its fold counts")
    verify.add_argument("--dataset", choices=VERIFIERS, required=True)
    verify.add_argument("--root", type=Path, required=True, help="the folder data.root points at")
    verify.add_argument("--full", action="store_true", help="decode every image, not a sample")
    verify.add_argument(
        "--min-pixels",
        type=int,
        help="pixels a class needs in an image to be listed (default: the threshold a synthetic "
        "tree's vrpsam_synthetic.json records, else 2048, PFENet's rule)",
    )
    verify.set_defaults(run=_verify)

    episodes = commands.add_parser("episodes", help="write a fixed episode list")
    episodes.add_argument("--dataset", choices=tuple(SOURCE_BUILDERS), required=True)
    episodes.add_argument("--root", type=Path, required=True)
    episodes.add_argument("--pascal-root", type=Path, help="VOC2012 folder (coco2pascal test)")
    episodes.add_argument("--fold", type=int, required=True)
    episodes.add_argument(
        "--split",
        choices=("test", "val", "train"),
        default="test",
        help="test: the fixed test list; val: model-selection episodes; train: the first N "
        "training episodes of epoch 0, as a run with this seed draws them",
    )
    episodes.add_argument(
        "--protocol",
        choices=("default", "official"),
        default="default",
        help="the episode rules and splits of this protocol (docs/protocol.md)",
    )
    episodes.add_argument("--shot", type=int, default=1)
    episodes.add_argument("--seed", type=int, default=0)
    episodes.add_argument(
        "--n",
        type=_count,
        default=argparse.SUPPRESS,
        help="number of episodes, or 'all' (one pass over the test images: pairs/images rules); "
        "default: the benchmark's (data.test_episodes of conf/data: 1000, LVIS-92i 2300, "
        "FSS-1000 all)",
    )
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
