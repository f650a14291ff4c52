"""Check a DAVIS tree before a video evaluation (``data=davis2017`` / ``data=davis2016``).

Every sequence of ``ImageSets/<year>/val.txt`` must have frames (``JPEGImages/480p/<seq>/*.jpg``)
and annotations (``Annotations/480p/<seq>/*.png``) with the same stems; annotations must be palette
or greyscale PNGs of object ids (not colour renderings); every annotation must have its frame's
size; the first frame must mark at least one object. File sizes and modes are read from every
file's header; ``full=True`` also decodes every frame and annotation. Problems are named file by
file; the summary row counts the split's sequences, frames and objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vrpsam.data.davis import HINT, DavisSource
from vrpsam.data.reading import DatasetError, read_rgb
from vrpsam.data.verify import VerifyReport

_ERRORS = (OSError, DatasetError, ValueError)
LABEL_MODES = ("P", "L")


@dataclass
class DavisVerifyReport(VerifyReport):
    """A :class:`~vrpsam.data.verify.VerifyReport` whose rows are
    ``(year, split, sequences, frames, objects, most objects in a sequence)``."""

    def format(self) -> str:
        lines = [f"{self.dataset} tree at {self.root}"]
        if self.rows:
            head = ("year", "split", "sequences", "frames", "objects", "max/seq")
            lines.append("  ".join(f"{h:>9}" for h in head))
            lines += ["  ".join(f"{v:>9}" for v in row) for row in self.rows]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s) found")
        return "\n".join(lines)


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """(PIL mode, (H, W)) from a file's header."""
    with Image.open(path) as image:
        return image.mode, (image.height, image.width)


def _check_sequence(
    source: DavisSource, name: str, report: VerifyReport, full: bool
) -> tuple[int, int] | None:
    """Check one sequence; (frames, objects) when it is usable, else None."""
    frame_dir, label_dir = source.image_dir / name, source.label_dir / name
    missing = [f"{what} not found: {folder}" for what, folder in
               (("frames folder", frame_dir), ("annotations folder", label_dir))
               if not folder.is_dir()]  # fmt: skip
    if missing:
        report.problems.extend(f"sequence {name!r}: {m}" for m in missing)
        return None
    frames = sorted(p.stem for p in frame_dir.glob("*.jpg"))
    labels = sorted(p.stem for p in label_dir.glob("*.png"))
    if not frames:
        report.problems.append(f"sequence {name!r}: no .jpg frame in {frame_dir}")
        return None
    for stem in sorted(set(frames) - set(labels)):
        report.problems.append(
            f"annotation not found: {source.label_path(name, stem)} (for frame {stem}.jpg)"
        )
    for stem in sorted(set(labels) - set(frames)):
        report.problems.append(
            f"frame not found: {source.frame_path(name, stem)} (for annotation {stem}.png)"
        )
    usable = True
    for stem in (s for s in frames if s in set(labels)):
        frame, label = source.frame_path(name, stem), source.label_path(name, stem)
        try:
            _, frame_size = _header(frame)
            mode, label_size = _header(label)
            if full:
                read_rgb(frame, what="DAVIS frame")
                source.load_label(name, stem)
        except _ERRORS as error:
            report.problems.append(f"cannot read {frame.name} / {label.name} of {name!r}: {error}")
            usable = False
            continue
        if mode not in LABEL_MODES:
            report.problems.append(
                f"annotation {label} has mode {mode}: expected a palette or greyscale PNG of "
                "object ids (0 background, k = object k), not a colour rendering"
            )
            usable = False
        if frame_size != label_size:
            report.problems.append(
                f"annotation {label} is {label_size[1]}×{label_size[0]} but its frame {frame} is "
                f"{frame_size[1]}×{frame_size[0]}"
            )
            usable = False
    if not usable or frames[0] not in labels:
        return None
    try:
        objects = len(source.objects(name))
    except _ERRORS as error:
        report.problems.append(str(error))
        return None
    if len(frames) < 3:
        report.notes.append(
            f"sequence {name!r} has {len(frames)} frames: the DAVIS protocol scores none (it "
            "leaves out the first and the last)"
        )
    return len(frames), objects


def verify_davis(
    root: str | Path, *, year: str = "2017", full: bool = False, split: str = "val"
) -> VerifyReport:
    """Check a DAVIS tree (see the module doc).

    Args:
        root: the DAVIS folder.
        year: ``"2017"`` or ``"2016"`` (which ImageSets list, and how ids are read).
        full: decode every frame and annotation (else headers only, and each first annotation).
        split: the ImageSets list.
    """
    root = Path(root).expanduser()
    report = DavisVerifyReport(dataset=f"davis{year}", root=root)
    try:
        source = DavisSource(root, year=str(year), split=split)
    except (FileNotFoundError, DatasetError) as error:
        report.problems.append(str(error))
        return report
    counts = [(_check_sequence(source, name, report, full)) for name in source.sequences]
    usable = [c for c in counts if c is not None]
    if not usable:
        report.problems.append(f"no usable sequence in {source.list_file}: {HINT}")
        return report
    frames = sum(f for f, _ in usable)
    objects = [o for _, o in usable]
    report.rows.append((str(year), split, len(usable), frames, sum(objects), max(objects)))
    if len(usable) < len(counts):
        report.notes.append(f"{len(counts) - len(usable)} of {len(counts)} sequences unusable")
    return report
