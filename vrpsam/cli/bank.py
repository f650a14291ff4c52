r"""``vrpsam-bank``: build a reference bank (many classes at once) from a folder of references,
and choose its presence threshold on validation images.

    vrpsam-bank build --export EXPORT --refs refs/ --out bank/ [--presence-threshold 0.6]
    vrpsam-bank calibrate --export EXPORT --bank bank/ --val val/

``refs/`` holds one folder per class, named after it; in each, every reference image with its
mask (non-zero = the object):

    refs/cat/tabby.jpg   refs/cat/tabby.png        a JPEG image: its mask is <name>.png
    refs/dog/rex.png     refs/dog/rex_mask.png     a PNG image: its mask is <name>_mask.png

(``_mask.png`` is also what ``vrpsam-predict`` writes, so its masks can serve as references.)
Files of other kinds are ignored. An image without its mask, a mask without its image, an empty
mask or an unreadable file is named, and the bank is not written until every one is fixed. The
bank (``bank.safetensors`` + ``bank.json``) is written atomically; use it with
``vrpsam-predict ... bank=bank/`` or :meth:`vrpsam.predictor.bank.ReferenceBank.load`.

``calibrate`` scores labelled validation images (never the images you report on) and stores the
threshold that tells present from absent classes best in ``bank.json``. ``val/`` holds one folder
per bank class with images that show that class and none of the bank's other classes, and
optionally ``val/_absent/`` with images that show none of them (masks beside the images, as in
``refs/``, are ignored, so a spare references folder serves).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from vrpsam.cli.errors import reported

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIX = "_mask.png"  # the mask of a PNG image
ABSENT_FOLDER = "_absent"  # validation images that show none of the bank's classes


class ReferenceFolderError(ValueError):
    """A references folder with files that cannot make a bank (each one named)."""


def reference_pairs(refs: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """(class, image, mask) of every reference in ``refs/<class>/``, and the problems found.

    Returns:
        the pairs, sorted by class folder then file name; a sentence per file that cannot be
        used (an image without its mask, a mask without its image, a file outside a class
        folder).
    """
    refs = Path(refs)
    if not refs.is_dir():
        raise FileNotFoundError(f"references folder {refs} does not exist")
    pairs, problems = [], []
    for path in sorted(refs.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            problems.append(f"{path}: images go in a class folder ({refs}/<class>/{path.name})")
    for folder in _class_folders(refs):
        files, images, masks = _folder_files(folder)
        used = set()
        for name in images:
            path = files[name]
            mask = f"{path.stem}{MASK_SUFFIX}" if path.suffix.lower() == ".png" else (
                f"{path.stem}.png")  # fmt: skip
            if mask in files:
                pairs.append((folder.name, path, files[mask]))
                used.add(mask)
            else:
                problems.append(f"{path}: no mask {folder / mask}")
        for name in sorted(masks - used):
            problems.append(f"{files[name]}: a mask without its image")
        if not images and not masks:
            problems.append(f"{folder}: a class folder without reference images")
    return pairs, problems


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_files(folder: Path) -> tuple[dict[str, Path], list[str], set[str]]:
    """A class folder's files by name, its image names (sorted) and its mask names: a JPEG's
    mask is ``<name>.png``, a PNG's ``<name>_mask.png``."""
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    masks = {name for name in files if name.lower().endswith(MASK_SUFFIX)}
    for path in files.values():
        if path.suffix.lower() in (".jpg", ".jpeg") and f"{path.stem}.png" in files:
            masks.add(f"{path.stem}.png")
    images = sorted(name for name, p in files.items()
                    if p.suffix.lower() in IMAGE_SUFFIXES and name not in masks)  # fmt: skip
    return files, images, masks


def validation_images(val: str | Path, classes: Sequence[str]) -> list[tuple[Path, str | None]]:
    """(image, the bank class it shows or None) of every image in ``val/<class>/`` and
    ``val/_absent/``, sorted by folder then name.

    Raises:
        FileNotFoundError: ``val`` is missing or holds no image.
        ReferenceFolderError: a folder that is neither a bank class nor ``_absent`` (each named).
    """
    val = Path(val)
    if not val.is_dir():
        raise FileNotFoundError(f"validation folder {val} does not exist")
    folders = _class_folders(val)
    unknown = [f.name for f in folders if f.name not in classes and f.name != ABSENT_FOLDER]
    if unknown:
        raise ReferenceFolderError(
            f"validation folder(s) {', '.join(unknown)} in {val} are not classes of the bank "
            f"({', '.join(classes)}): name each folder after the class its images show, or put "
            f"images without any bank class in {val / ABSENT_FOLDER}"
        )
    found = []
    for folder in folders:
        files, images, _ = _folder_files(folder)
        shown = None if folder.name == ABSENT_FOLDER else folder.name
        found += [(files[name], shown) for name in images]
    if not found:
        raise FileNotFoundError(
            f"validation folder {val} holds no images: put them in {val}/<class>/ (or "
            f"{val / ABSENT_FOLDER}/)"
        )
    return found


def check_masks(pairs: list[tuple[str, Path, Path]]) -> list[str]:
    """A sentence per reference whose image or mask cannot be used (unreadable, another size,
    empty)."""
    from vrpsam.predictor.inputs import annotation_to_mask, load_rgb

    problems = []
    for _, image, mask in pairs:
        try:
            annotation_to_mask(load_rgb(image, what="reference image").shape[:2], mask=mask)
        except (OSError, ValueError) as error:
            problems.append(f"{image} with {mask.name}: {error}")
    return problems


def open_predictor(args: argparse.Namespace):
    """The export's predictor on the frozen files the arguments name (the slow step)."""
    from vrpsam.predictor import VRPSAMPredictor

    return VRPSAMPredictor.from_export(
        args.export,
        sam_checkpoint=args.sam_checkpoint,
        backbone_checkpoint=args.backbone_checkpoint,
        device=args.device,
        random_frozen_weights=args.random_frozen_weights,
    )


def build(args: argparse.Namespace) -> int:
    from vrpsam.predictor.bank import ReferenceBank, export_files

    pairs, problems = reference_pairs(args.refs)
    if not pairs and not problems:
        raise FileNotFoundError(
            f"references folder {args.refs} holds no class folders: put each class's images "
            "and masks in <refs>/<class>/"
        )
    if not 0.0 <= args.presence_threshold <= 1.0:
        raise ValueError(f"--presence-threshold must lie in [0, 1], got {args.presence_threshold}")
    problems += check_masks(pairs)  # before the slow model load
    if problems:
        raise ReferenceFolderError(
            f"{len(problems)} reference file(s) in {args.refs} cannot be used, so no bank was "
            "written:\n  " + "\n  ".join(problems)
        )
    files = export_files(args.export)  # refuses a missing or damaged export before the load
    predictor = open_predictor(args)
    bank = ReferenceBank(predictor, presence_threshold=args.presence_threshold, model_files=files)
    for class_name, image, mask in pairs:
        bank.add(class_name, image, mask=mask)
    bank.save(args.out)
    print(f"wrote bank {args.out}: {len(bank.classes)} classes")
    for class_name, shots in bank.shots.items():
        print(f"  {class_name}: {shots} shot{'s' if shots != 1 else ''}")
    return 0


def calibrate(args: argparse.Namespace) -> int:
    from vrpsam.predictor.bank import (
        ReferenceBank,
        presence_choice,
        read_bank_info,
        store_presence_threshold,
    )

    info = read_bank_info(args.bank)  # a bad bank is refused before the slow model load
    pairs = validation_images(args.val, info["classes"])
    predictor = open_predictor(args)
    bank = ReferenceBank.load(args.bank, predictor)
    results = bank.segment_batch(
        [image for image, _ in pairs],
        progress=lambda done, total: print(f"scored {done}/{total} validation images", flush=True),
    )
    present, absent = [], []
    for (_, shown), result in zip(pairs, results, strict=True):
        for name, score in result.scores.items():
            (present if name == shown else absent).append(score)
    chosen = presence_choice(present, absent)
    threshold = chosen["threshold"]
    f1, accuracy = 100 * chosen["f1"], 100 * chosen["accuracy"]
    auc = None if chosen["auc"] is None else round(100 * chosen["auc"], 2)
    chosen_on = {"images": len(pairs), "present_pairs": len(present),
                 "absent_pairs": len(absent), "f1": round(f1, 2), "accuracy": round(accuracy, 2),
                 "auc": auc}  # fmt: skip
    store_presence_threshold(args.bank, threshold, chosen_on)
    print(f"presence threshold of {args.bank}: {info['presence_threshold']:.3f} -> "
          f"{threshold:.3f} on {len(pairs)} validation images ({chosen['pairs']} (image, class) "
          f"pairs: F1 {f1:.1f}%, accuracy {accuracy:.1f}%)")  # fmt: skip
    return 0


def _model_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--export", required=True, help="the export folder (vrpsam-export)")
    command.add_argument("--sam-checkpoint", help="the SAM file the export was trained with")
    command.add_argument("--backbone-checkpoint", help="the backbone file it was trained with")
    command.add_argument(
        "--random-frozen-weights",
        action="store_true",
        help="random SAM/backbone where a recorded file is missing (tests only)",
    )
    command.add_argument("--device", default="cpu")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="vrpsam-bank",
        description="Build a reference bank (many classes at once) from a folder of references.",
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="a bank from refs/<class>/<image + mask>")
    _model_arguments(make)
    make.add_argument("--refs", required=True, help="folder of <class>/<name>.jpg + .png masks")
    make.add_argument("--out", required=True, help="the bank folder to write")
    make.add_argument(
        "--presence-threshold",
        type=float,
        default=0.5,
        help="presence score a class needs (or choose it with `vrpsam-bank calibrate`)",
    )
    make.set_defaults(run=build)
    tune = commands.add_parser(
        "calibrate", help="choose the bank's presence threshold on labelled validation images"
    )
    _model_arguments(tune)
    tune.add_argument("--bank", required=True, help="the bank folder (vrpsam-bank build)")
    tune.add_argument(
        "--val", required=True, help="folder of <class>/<images> (and _absent/<images>)"
    )
    tune.set_defaults(run=calibrate)
    return top


@reported
def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
