r"""Segment a folder of images from one annotated reference (what ``vrpsam-predict`` runs).

    vrpsam-predict export_dir=EXPORT reference.image=ref.jpg reference.mask=ref_mask.png \\
        targets='photos/*.jpg' out_dir=predictions

Writes ``<name>_mask.png`` (0/255) and ``<name>_overlay.png`` (the image with the predicted region
tinted and outlined) per target into ``out_dir``. ``<name>`` is the target's file stem; targets
that share a stem (``a.jpg`` and ``a.png``, or ``a.jpg`` in two folders of a glob) get the
extension added (``a_jpg``, ``a_png``) and, if that is still shared, a number (``a_jpg_1``,
``a_jpg_2``), in the sorted order of the targets, so no output overwrites another.

With a reference bank (``vrpsam-bank build``) instead of one reference, every class of the bank
is segmented at once:

    vrpsam-predict export_dir=EXPORT bank=bank/ targets='photos/*.jpg' out_dir=predictions

which writes ``<name>_labels.png`` (a palette PNG whose pixel values are the label ids: 0
background, i + 1 the bank's i-th class, in the PASCAL VOC colours) and ``<name>_overlay.png``
(the image tinted by class, with a legend of the classes and their presence scores) per target,
and ``bank_predictions.json`` (per target: the classes judged present and every class's score).

A target that cannot be read is reported (file and reason, on stderr) and skipped; the command
then exits with status 1 after segmenting the others. A reference or bank that cannot be read
stops the run before the model is loaded.
"""

from __future__ import annotations

import glob
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw, ImageFont

from vrpsam.artifacts.atomic import atomic_write, atomic_write_json
from vrpsam.predictor.bank import BankResult, ReferenceBank, read_bank_info
from vrpsam.predictor.core import VRPSAMPredictor
from vrpsam.predictor.inputs import annotation_to_mask, load_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
TINT = (255, 30, 30)


@dataclass
class PredictionReport:
    """What a prediction run did.

    Attributes:
        written: the mask files written (``<name>_mask.png``, or ``<name>_labels.png`` with a
            bank; the overlay sits beside each), in the order of the targets.
        failed: (target, reason) of each target that could not be read, in the order of the
            targets.
    """

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def list_targets(targets: str) -> list[Path]:
    """Images of a folder, a glob, or one file; a clear error when nothing matches."""
    path = Path(targets)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        found = [path]
    else:
        # Sub-folders a glob matches are not targets; files that are not images are (and fail).
        found = sorted(Path(p) for p in glob.glob(targets) if not Path(p).is_dir())
    if not found:
        raise FileNotFoundError(f"no target images found at {targets!r} (a folder, glob or image)")
    return found


def output_names(targets: list[Path]) -> list[str]:
    """A distinct, deterministic output name per target (outputs are ``<name>_mask.png`` ...).

    The stem when no other target shares it; else ``<stem>_<ext>``; if that is still shared (or
    taken), ``<stem>_<ext>_<k>`` with the smallest free k from 1, in target order. Names are
    compared ignoring case, as case-insensitive file systems (macOS, Windows) would.

    Args:
        targets: the target files, in a fixed (sorted) order.

    Returns:
        one name per target, in the same order.
    """
    stems = Counter(p.stem.casefold() for p in targets)
    names: list[str | None] = [p.stem if stems[p.stem.casefold()] == 1 else None for p in targets]
    taken = {name.casefold() for name in names if name is not None}
    with_ext = {
        i: f"{p.stem}_{p.suffix[1:].lower()}" if p.suffix else p.stem
        for i, p in enumerate(targets)
        if names[i] is None
    }
    counts = Counter(name.casefold() for name in with_ext.values())
    for i, name in with_ext.items():
        if counts[name.casefold()] == 1 and name.casefold() not in taken:
            names[i] = name
            taken.add(name.casefold())
    for i, name in with_ext.items():
        if names[i] is None:
            k = 1
            while f"{name}_{k}".casefold() in taken:
                k += 1
            names[i] = f"{name}_{k}"
            taken.add(names[i].casefold())
    return names


def reference_annotation(reference: DictConfig) -> dict:
    """The one annotation given in ``reference.*`` as predictor keyword arguments.

    A mask or scribble given as a path stays a path: the predictor reads it (the object is every
    non-zero pixel; see :func:`vrpsam.data.reading.read_binary_mask`); a scribble may also be a
    list of polylines.
    """
    given = {
        k: reference.get(k)
        for k in ("mask", "box", "points", "scribble")
        if reference.get(k) is not None
    }
    if len(given) != 1:
        raise ValueError(
            "give exactly one of reference.mask, reference.box, reference.points, "
            f"reference.scribble; got {sorted(given) or 'none'}"
        )
    kind, value = next(iter(given.items()))
    if kind in ("mask", "scribble") and isinstance(value, str):
        return {kind: Path(value)}
    return {kind: OmegaConf.to_object(value) if OmegaConf.is_config(value) else value}


def save_png(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the mask tinted red and outlined; pixels outside the mask are unchanged.

    The outline is the mask's inner border, its outer half white and its inner half black, so it
    shows on dark and bright images alike; it is 2 px wide, wider on large images (1 px per 250 px
    of the shorter side) so it still shows when the image is viewed scaled down.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) bool, the predicted region.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = image.copy()
    inside = mask.astype(bool)
    out[inside] = (0.5 * image[inside] + 0.5 * np.array(TINT)).astype(np.uint8)
    width = max(2, min(mask.shape) // 250)
    kernel = np.ones((3, 3), np.uint8)
    binary = inside.astype(np.uint8)
    # Erosion peels the region one pixel ring at a time (the image's edge is not a boundary).
    outer = binary - cv2.erode(binary, kernel, iterations=width // 2)
    ring = binary - cv2.erode(binary, kernel, iterations=width)
    out[ring.astype(bool)] = 0
    out[outer.astype(bool)] = 255
    return out


def open_predictor(cfg: DictConfig) -> VRPSAMPredictor:
    """The export's predictor on the frozen files ``cfg`` names (the slow step)."""
    return VRPSAMPredictor.from_export(
        cfg.export_dir,
        sam_checkpoint=cfg.sam_checkpoint,
        backbone_checkpoint=cfg.backbone_checkpoint,
        device=cfg.device,
        random_frozen_weights=bool(cfg.random_frozen_weights),
        check_frozen_weights=bool(cfg.check_frozen_weights),
    )


def readable_chunks(
    targets: list[Path], names: list[str], size: int, report: PredictionReport
) -> Iterator[list[tuple[Path, str, np.ndarray]]]:
    """(path, name, RGB image) of the targets, ``size`` at a time, with a progress bar; a
    target that cannot be read is recorded in ``report.failed``, reported on stderr and left
    out (a chunk may then be empty)."""
    from tqdm import tqdm

    size = max(int(size), 1)
    with tqdm(total=len(targets), desc="predict", unit="image") as bar:
        for start in range(0, len(targets), size):
            chunk = []
            for path, name in zip(
                targets[start : start + size], names[start : start + size], strict=True
            ):
                try:
                    chunk.append((path, name, load_rgb(path, what="target image")))
                except (OSError, ValueError) as error:
                    report.failed.append((path, str(error)))
                    tqdm.write(f"skipped {path}: {error}", file=sys.stderr)
            yield chunk
            bar.update(min(size, len(targets) - start))


def predict(cfg: DictConfig) -> PredictionReport:
    """Run the predictor over the targets, skipping (and reporting) those that cannot be read.

    Raises:
        FileNotFoundError, ValueError: no targets, or a reference image or annotation that
            cannot be used (checked before the model is loaded).
    """
    targets = list_targets(str(cfg.targets))
    names = output_names(targets)
    given = [f"reference.{k}" for k, v in cfg.reference.items() if v is not None]
    if cfg.get("bank") is not None:
        if given:
            raise ValueError(
                f"give either bank=BANK_DIR (many classes) or reference.* (one object), not "
                f"both; got bank={cfg.bank} and {', '.join(given)}"
            )
        return predict_with_bank(cfg, targets, names)
    if cfg.reference.get("image") is None:
        raise ValueError(
            "nothing to segment: give reference.image=IMAGE with one of reference.mask, "
            "reference.box, reference.points, reference.scribble (one object), or bank=BANK_DIR "
            "(many classes; build one with `vrpsam-bank build`)"
        )
    # The reference first: nothing can be predicted without it, so fail before the slow load.
    reference = load_rgb(Path(cfg.reference.image), what="reference image")
    annotation = reference_annotation(cfg.reference)
    annotation_to_mask(reference.shape[:2], **annotation)
    out = Path(cfg.out_dir)
    predictor = open_predictor(cfg)
    predictor.set_reference(reference, **annotation)
    report = PredictionReport()
    for chunk in readable_chunks(targets, names, cfg.batch_size, report):
        results = predictor.predict_batch([image for *_, image in chunk]) if chunk else []
        for (_, name, image), (mask, _, _) in zip(chunk, results, strict=True):
            save_png(out / f"{name}_mask.png", (mask * 255).astype(np.uint8))
            save_png(out / f"{name}_overlay.png", overlay(image, mask))
            report.written.append(out / f"{name}_mask.png")
    return report


def voc_palette(n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colours of the PASCAL VOC label palette (0 black, 1 dark red, 2 green, ...)."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for label in range(n):
        code, colour = label, [0, 0, 0]
        for bit in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((code >> channel) & 1) << bit
            code >>= 3
        palette[label] = colour
    return palette


def save_labels(path: Path, labels: np.ndarray) -> None:
    """A palette PNG whose pixel values are the label ids (VOC colours)."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(voc_palette().ravel().tolist())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def label_overlay(image: np.ndarray, result: BankResult, classes: list[str]) -> np.ndarray:
    """The image tinted by class with the regions' borders in white, and a legend panel on its
    right: each class's colour, name and presence score (absent classes greyed).

    Args:
        image: (H, W, 3) uint8 RGB.
        result: the bank's result for the image (labels (H, W), 0 = background).
        classes: the bank's classes (label i + 1 is ``classes[i]``).

    Returns:
        (max(H, legend height), W + legend width, 3) uint8 RGB.
    """
    palette, labels = voc_palette(), result.labels
    out = image.copy()
    inside = labels > 0
    out[inside] = (0.5 * image[inside] + 0.5 * palette[labels[inside]]).astype(np.uint8)
    border = np.zeros_like(inside)
    border[1:] |= labels[1:] != labels[:-1]
    border[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    out[border] = 255
    size = max(12, min(image.shape[:2]) // 32)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        font = ImageFont.load_default()
    rows = [f"{name}  {result.scores[name]:.2f}" + ("" if name in result.present else
            "  (absent)") for name in classes]  # fmt: skip
    pad, line = size // 2, size + size // 2
    width = pad * 3 + size + max(int(font.getlength(row)) for row in rows)
    height = max(image.shape[0], pad * 2 + line * len(rows))
    canvas = Image.new("RGB", (image.shape[1] + width, height), "white")
    canvas.paste(Image.fromarray(out), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (name, row) in enumerate(zip(classes, rows, strict=True)):
        x, y = image.shape[1] + pad, pad + i * line
        draw.rectangle((x, y, x + size, y + size), fill=tuple(int(v) for v in palette[i + 1]),
                       outline="black")  # fmt: skip
        colour = "black" if name in result.present else "grey"
        draw.text((x + size + pad, y), row, fill=colour, font=font)
    return np.asarray(canvas)


def predict_with_bank(cfg: DictConfig, targets: list[Path], names: list[str]) -> PredictionReport:
    """Segment every class of ``cfg.bank`` in the targets (label maps, overlays, and
    ``bank_predictions.json``), skipping and reporting targets that cannot be read."""
    read_bank_info(cfg.bank)  # a missing or damaged bank stops the run before the slow load
    out = Path(cfg.out_dir)
    bank = ReferenceBank.load(cfg.bank, open_predictor(cfg))
    report, found = PredictionReport(), []
    # Read as many targets as the bank's model segments at once (1 for a training-free method):
    # the progress bar then moves with every batch the model runs.
    for chunk in readable_chunks(targets, names, bank.model.batch_size, report):
        results = bank.segment_batch([image for *_, image in chunk]) if chunk else []
        for (path, name, image), result in zip(chunk, results, strict=True):
            save_labels(out / f"{name}_labels.png", result.labels)
            save_png(out / f"{name}_overlay.png", label_overlay(image, result, bank.classes))
            report.written.append(out / f"{name}_labels.png")
            found.append({"target": str(path), "name": name, "present": result.present,
                          "scores": result.scores})  # fmt: skip
    summary = {"bank": str(cfg.bank), "classes": bank.classes,
               "presence_threshold": bank.presence_threshold, "targets": found}  # fmt: skip
    atomic_write_json(out / "bank_predictions.json", summary, indent=2)
    return report
